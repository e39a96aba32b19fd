//! Strict JSON for request bodies.
//!
//! `serde_json` alone takes the last of two equal keys in a map (a profile's
//! `fields`) and keeps a message body as its raw text, duplicates and all.
//! Two parsers that disagree on which value wins are how a filter gets
//! bypassed, so a body with a key twice in one object, at any depth, is
//! refused as `bad_json` before it is parsed for real. The same first pass
//! bounds nesting (serde_json's limit of 128 levels, also inside a message
//! body, whose raw text serde_json would otherwise accept at any depth),
//! refuses lone UTF-16 surrogates in string escapes and numbers beyond the
//! range of `f64`, so every stored body parses again in any client.

use std::collections::HashSet;
use std::fmt;

use serde::de::{self, DeserializeOwned, DeserializeSeed, MapAccess, SeqAccess, Visitor};

use crate::error::ApiError;

/// Parses a request body into `T`.
///
/// # Errors
///
/// [`ApiError::BadJson`] when it is not JSON, has a key twice in one
/// object, nests deeper than 128 levels, or is not of the shape of `T`.
pub(crate) fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    check(bytes)?;
    serde_json::from_slice(bytes).map_err(|e| ApiError::BadJson(e.to_string()))
}

/// Checks that `bytes` is one JSON value without a key twice in any object.
///
/// # Errors
///
/// [`ApiError::BadJson`] otherwise.
pub(crate) fn check(bytes: &[u8]) -> Result<(), ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    Unique
        .deserialize(&mut de)
        .and_then(|()| de.end())
        .map_err(|e| ApiError::BadJson(e.to_string()))
}

/// Walks one value, remembering the keys of each object it is in.
struct Unique;

impl<'de> DeserializeSeed<'de> for Unique {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Unique {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Unique)?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if seen.contains(&key) {
                return Err(de::Error::custom(format_args!("duplicate key {key:?}")));
            }
            seen.insert(key);
            map.next_value_seed(Unique)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(json: &str) -> Option<String> {
        check(json.as_bytes()).err().map(|e| e.to_string())
    }

    #[test]
    fn accepts_plain_json() {
        for ok in [
            "{}",
            "[]",
            "1",
            r#"{"a": {"a": 1}, "b": [{"a": 1}, {"a": 2}]}"#,
            r#"{"big": 123456789012345678901234567890}"#,
            r#"{"s": "\ud83d\ude00"}"#,
        ] {
            assert_eq!(code(ok), None, "{ok}");
        }
    }

    #[test]
    fn refuses_duplicates_at_any_depth_deep_nesting_and_bad_text() {
        for bad in [
            r#"{"a": 1, "a": 2}"#,
            r#"{"a": 1, "\u0061": 2}"#,
            r#"{"x": [{"b": {"c": 1, "c": 1}}]}"#,
            r#"{"s": "\ud800"}"#,
            r#"{"n": 1e400}"#,
            "{} {}",
            "",
        ] {
            assert!(code(bad).is_some(), "{bad}");
        }
        let deep = "[".repeat(100_000);
        assert!(code(&deep).unwrap().contains("recursion"));
        assert!(check(b"{\"a\": \"\xff\"}").is_err());
    }
}
