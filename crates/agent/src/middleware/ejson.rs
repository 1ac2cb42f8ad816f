//! The middleware's extended JSON value encodings ("ejson").
//!
//! Owns: decoding/encoding `{"$date": ms}`, `{"$time": "HH:MM:SS"}`, `{"$set": [...]}`
//! and `{"$type": "date", "$value": "YYYY-MM-DD"}` (REFERENCE §1.2).
//! Does not: touch anything else in a reply.
//! Invariants: decoding is total — an unexpected shape yields `None`/an error, never a panic.

use chrono::{DateTime, NaiveDate, NaiveTime, TimeZone, Utc};
use serde::{Deserialize, Deserializer, Serializer};
use serde_json::{Value, json};

/// Decodes a timestamp as the middleware sends it: `{"$date": <ms since epoch>}`.
/// Also accepts a bare number (seconds or milliseconds are not guessed: it must be ms)
/// and an RFC 3339 string, which some persisted job copies use.
pub fn decode_datetime(value: &Value) -> Option<DateTime<Utc>> {
    match value {
        Value::Object(map) => map.get("$date").and_then(decode_millis),
        Value::Number(_) => decode_millis(value),
        Value::String(s) => DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|d| d.with_timezone(&Utc)),
        _ => None,
    }
}

fn decode_millis(value: &Value) -> Option<DateTime<Utc>> {
    // Integral milliseconds only: a float here would be a shape we do not know.
    let ms = value.as_i64()?;
    Utc.timestamp_millis_opt(ms).single()
}

/// Encodes a timestamp the way the middleware does.
pub fn encode_datetime(at: DateTime<Utc>) -> Value {
    json!({ "$date": at.timestamp_millis() })
}

/// Decodes `{"$time": "HH:MM:SS"}`.
pub fn decode_time(value: &Value) -> Option<NaiveTime> {
    let s = value.as_object()?.get("$time")?.as_str()?;
    NaiveTime::parse_from_str(s, "%H:%M:%S")
        .or_else(|_| NaiveTime::parse_from_str(s, "%H:%M"))
        .ok()
}

/// Decodes `{"$type": "date", "$value": "YYYY-MM-DD"}`.
pub fn decode_date(value: &Value) -> Option<NaiveDate> {
    let map = value.as_object()?;
    if map.get("$type")?.as_str()? != "date" {
        return None;
    }
    NaiveDate::parse_from_str(map.get("$value")?.as_str()?, "%Y-%m-%d").ok()
}

/// Decodes `{"$set": [...]}` into its items (or passes a plain array through).
pub fn decode_set(value: &Value) -> Option<Vec<Value>> {
    match value {
        Value::Array(items) => Some(items.clone()),
        Value::Object(map) => map.get("$set")?.as_array().cloned(),
        _ => None,
    }
}

/// Serde adapter for `Option<DateTime<Utc>>` fields in middleware replies
/// (`#[serde(default, with = "crate::middleware::ejson::opt_datetime")]`).
pub mod opt_datetime {
    use super::{DateTime, Deserialize, Deserializer, Serializer, Utc, Value};

    /// Deserialises an ejson timestamp; `null`/absent/unknown shapes become `None`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        let value = Option::<Value>::deserialize(d)?;
        Ok(value.as_ref().and_then(super::decode_datetime))
    }

    /// Serialises as RFC 3339 (for our own reports and state, not for the middleware).
    pub fn serialize<S: Serializer>(v: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(at) => s.serialize_str(&at.to_rfc3339()),
            None => s.serialize_none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_each_encoding() {
        let at = decode_datetime(&json!({"$date": 1_700_000_000_000_i64})).unwrap();
        assert_eq!(at.timestamp(), 1_700_000_000);
        assert_eq!(encode_datetime(at), json!({"$date": 1_700_000_000_000_i64}));
        assert_eq!(
            decode_time(&json!({"$time": "08:30:00"})).unwrap(),
            NaiveTime::from_hms_opt(8, 30, 0).unwrap()
        );
        assert_eq!(
            decode_date(&json!({"$type": "date", "$value": "2026-11-23"})).unwrap(),
            NaiveDate::from_ymd_opt(2026, 11, 23).unwrap()
        );
        assert_eq!(
            decode_set(&json!({"$set": [1, 2]})).unwrap(),
            vec![json!(1), json!(2)]
        );
    }

    #[test]
    fn unexpected_shapes_are_none() {
        assert!(decode_datetime(&json!({"$date": "soon"})).is_none());
        assert!(decode_datetime(&json!(true)).is_none());
        assert!(decode_time(&json!("08:00")).is_none());
        assert!(decode_date(&json!({"$type": "time", "$value": "x"})).is_none());
    }
}
