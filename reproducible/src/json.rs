//! Canonical JSON: object keys sorted by their bytes, no insignificant white space, standard
//! string escapes, integers only.
//!
//! Manifests, configs and indexes are serialised once through [`to_vec`]; the returned bytes are
//! hashed, written and pushed as they are. The ordering does not depend on how `serde_json`'s
//! `Map` is configured (its `preserve_order` feature can be switched on by any crate in the
//! build), because keys are sorted here.

use serde::Serialize;
use serde_json::Value;

/// Why a value could not be written as canonical JSON.
#[derive(Debug, thiserror::Error)]
pub enum JsonError {
    /// The value could not be represented as JSON at all.
    #[error("value cannot be represented as JSON")]
    Serialize(#[source] serde_json::Error),
    /// Floating-point numbers have no canonical form here; kiln's formats do not use them.
    #[error("floating-point number {0} has no canonical JSON form")]
    Float(String),
}

/// Serialises `value` as canonical JSON.
pub fn to_vec<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, JsonError> {
    let value = serde_json::to_value(value).map_err(JsonError::Serialize)?;
    let mut out = Vec::with_capacity(256);
    write_value(&value, &mut out)?;
    Ok(out)
}

fn write_value(value: &Value, out: &mut Vec<u8>) -> Result<(), JsonError> {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(number) => {
            if number.is_f64() {
                return Err(JsonError::Float(number.to_string()));
            }
            out.extend_from_slice(number.to_string().as_bytes());
        }
        Value::String(string) => write_string(string, out)?,
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(item, out)?;
            }
            out.push(b']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push(b'{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(key, out)?;
                out.push(b':');
                write_value(item, out)?;
            }
            out.push(b'}');
        }
    }
    Ok(())
}

fn write_string(string: &str, out: &mut Vec<u8>) -> Result<(), JsonError> {
    serde_json::to_writer(&mut *out, string).map_err(JsonError::Serialize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn sorts_keys_at_every_level_and_is_compact() {
        let mut inner = HashMap::new();
        for key in ["zeta", "alpha", "Mid", "beta"] {
            inner.insert(key.to_owned(), 1u8);
        }
        let value = serde_json::json!({ "b": [ { "y": 1, "x": null } ], "a": inner, "c": "q\"\n" });
        let bytes = to_vec(&value).unwrap();
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            r#"{"a":{"Mid":1,"alpha":1,"beta":1,"zeta":1},"b":[{"x":null,"y":1}],"c":"q\"\n"}"#
        );
    }

    #[test]
    fn same_bytes_for_every_hash_map_order() {
        let first = {
            let map: HashMap<String, String> =
                (0..32).map(|i| (format!("key{i}"), format!("v{i}"))).collect();
            to_vec(&map).unwrap()
        };
        for _ in 0..16 {
            let map: HashMap<String, String> =
                (0..32).map(|i| (format!("key{i}"), format!("v{i}"))).collect();
            assert_eq!(to_vec(&map).unwrap(), first);
        }
    }

    #[test]
    fn rejects_floats() {
        let err = to_vec(&serde_json::json!({ "x": 1.5 })).unwrap_err();
        assert!(matches!(err, JsonError::Float(ref s) if s == "1.5"));
    }
}
