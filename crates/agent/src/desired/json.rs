//! JSON parsing that notices duplicate object keys.
//!
//! Owns: [`parse`], which builds a `serde_json::Value` exactly as `serde_json::from_slice`
//! does and also lists the path of every key an object repeats.
//! Does not: judge anything else about the document (`wire` and `validate` do).
//! Invariants: `serde_json` keeps the **last** of two equal keys and says nothing; other
//! parsers (Python keeps the last, some keep the first, some refuse) disagree, so a
//! document whose meaning depends on the parser must be refused, never guessed. The
//! returned paths use the notation of [`super::FieldError`] (`device.guid`,
//! `actions[0].pool`) and never contain a value from the document (key names only).
//! Limitations: serde_json's nesting limit (128) still applies; numbers are kept as
//! serde_json keeps them (no arbitrary precision).

use std::collections::BTreeSet;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Parses `bytes` as JSON. Returns the value (last key wins, as `serde_json` does) and
/// the path of every repeated key, in document order.
pub(super) fn parse(bytes: &[u8]) -> Result<(Value, Vec<String>), serde_json::Error> {
    let mut duplicates = Vec::new();
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = Node {
        path: String::new(),
        duplicates: &mut duplicates,
    }
    .deserialize(&mut de)?;
    de.end()?;
    Ok((value, duplicates))
}

/// One value being read at `path`.
struct Node<'a> {
    path: String,
    duplicates: &'a mut Vec<String>,
}

fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

impl<'de> DeserializeSeed<'de> for Node<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Node<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        // serde_json only produces finite numbers; `from_f64` is `None` for NaN/inf.
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(Node {
            path: format!("{}[{}]", self.path, items.len()),
            duplicates: &mut *self.duplicates,
        })? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        let mut seen = BTreeSet::new();
        while let Some(key) = map.next_key::<String>()? {
            let path = child(&self.path, &key);
            if !seen.insert(key.clone()) {
                self.duplicates.push(path.clone());
            }
            let value = map.next_value_seed(Node {
                path,
                duplicates: &mut *self.duplicates,
            })?;
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn finds_repeated_keys_at_every_depth() {
        let text = br#"{"revision": 1, "device": {"guid": "a", "guid": "b"},
                        "actions": [{"id": "x", "pool": "p", "pool": "q"}], "revision": 2}"#;
        let (value, dups) = parse(text).unwrap();
        assert_eq!(dups, ["device.guid", "actions[0].pool", "revision"]);
        // The value is what serde_json makes of it (last wins).
        assert_eq!(value, serde_json::from_slice::<Value>(text).unwrap());
        assert_eq!(value["device"]["guid"], "b");
    }

    #[test]
    fn no_duplicates_no_findings_and_errors_stay_errors() {
        assert_eq!(
            parse(br#"{"a": {"a": 1}, "b": [{"a": 1}, {"a": 2}]}"#)
                .unwrap()
                .1,
            Vec::<String>::new()
        );
        assert!(parse(b"{\"a\": 1").is_err());
        assert!(parse(b"{} trailing").is_err());
    }

    proptest! {
        /// Same value as serde_json for any JSON serde_json can print.
        #[test]
        fn same_value_as_serde_json(n in any::<i64>(), f in -1e9f64..1e9, s in ".{0,8}", b in any::<bool>()) {
            let v = serde_json::json!({"n": n, "f": f, "s": s, "b": b, "l": [n, null, {"x": s}]});
            let bytes = serde_json::to_vec(&v).unwrap();
            let (parsed, dups) = parse(&bytes).unwrap();
            prop_assert_eq!(parsed, serde_json::from_slice::<Value>(&bytes).unwrap());
            prop_assert!(dups.is_empty());
        }

        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse(&bytes);
        }
    }
}
