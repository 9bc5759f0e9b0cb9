//! A canonical encoding of JSON values, written while the settings file is parsed, so that a
//! flag's fingerprint costs one pass over the bytes and no tree of values.
//!
//! Two JSON texts that mean the same value encode to the same bytes: object members are sorted
//! by key, whitespace and escapes do not matter, and every value is tagged and length-prefixed
//! so that different values never encode alike. (Numbers keep serde_json's distinction between
//! integers and floats: `100` and `100.0` differ, as they did in the tree the fingerprint was
//! computed from before.)

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserializer;

const NULL: u8 = b'n';
const TRUE: u8 = b't';
const FALSE: u8 = b'f';
const UNSIGNED: u8 = b'u';
const SIGNED: u8 = b'i';
const FLOAT: u8 = b'd';
const STRING: u8 = b's';
const ARRAY: u8 = b'[';
const ARRAY_END: u8 = b']';
const OBJECT: u8 = b'{';
const OBJECT_END: u8 = b'}';

/// Appends the encoding of a string to `out`.
fn push_str(out: &mut Vec<u8>, text: &str) {
    out.push(STRING);
    out.extend_from_slice(&(text.len() as u32).to_le_bytes());
    out.extend_from_slice(text.as_bytes());
}

/// Length of a string's encoding before its bytes (tag and length).
const STRING_HEADER: usize = 1 + 4;

/// Deserializes any JSON value, appending its canonical encoding to the buffer.
pub struct Canonical<'b>(pub &'b mut Vec<u8>);

impl<'de> DeserializeSeed<'de> for Canonical<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Canonical<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.0.push(NULL);
        Ok(())
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.visit_unit()
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.0.push(if v { TRUE } else { FALSE });
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.0.push(UNSIGNED);
        self.0.extend_from_slice(&v.to_le_bytes());
        Ok(())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.0.push(SIGNED);
        self.0.extend_from_slice(&v.to_le_bytes());
        Ok(())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.0.push(FLOAT);
        self.0.extend_from_slice(&v.to_bits().to_le_bytes());
        Ok(())
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        push_str(self.0, v);
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.0.push(ARRAY);
        while seq.next_element_seed(Canonical(self.0))?.is_some() {}
        self.0.push(ARRAY_END);
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        object(self.0, map, |_, _| Ok(Member::Encode))
    }
}

/// What an object's caller does with one member.
pub enum Member {
    /// Encode the value canonically (the caller has not read it).
    Encode,
    /// Leave the member out of the encoding (the caller has read or skipped the value).
    Skip,
}

/// An object key, borrowed from the input unless it had escapes.
pub struct Key<'de>(pub Cow<'de, str>);

impl<'de> de::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// Reads an object from `map`, appending its canonical encoding (members sorted by key) to
/// `out`. For each member, `member(key, map)` decides: encode its value, or leave it out (the
/// caller then reads or skips the value itself).
pub fn object<'de, A, F>(out: &mut Vec<u8>, mut map: A, mut member: F) -> Result<(), A::Error>
where
    A: MapAccess<'de>,
    F: FnMut(&str, &mut A) -> Result<Member, A::Error>,
{
    out.push(OBJECT);
    let start = out.len();
    // (start of the member's encoding, length of its key, end of its encoding)
    let mut members: Vec<(usize, usize, usize)> = Vec::new();
    while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
        let at = out.len();
        push_str(out, &key);
        match member(&key, &mut map)? {
            Member::Encode => map.next_value_seed(Canonical(out))?,
            Member::Skip => {
                out.truncate(at);
                continue;
            }
        }
        members.push((at, key.len(), out.len()));
    }
    let key_of = |m: &(usize, usize, usize)| m.0 + STRING_HEADER..m.0 + STRING_HEADER + m.1;
    let sorted = members
        .windows(2)
        .all(|w| out[key_of(&w[0])] <= out[key_of(&w[1])]);
    if !sorted {
        members.sort_by(|a, b| out[key_of(a)].cmp(&out[key_of(b)]));
        let mut reordered = Vec::with_capacity(out.len() - start);
        for m in &members {
            reordered.extend_from_slice(&out[m.0..m.2]);
        }
        out.truncate(start);
        out.extend_from_slice(&reordered);
    }
    out.push(OBJECT_END);
    Ok(())
}

/// Appends the canonical encoding of the JSON object `text`, leaving out its top-level members
/// named in `skip`. Text that is not an object (it always is: the settings-file pass cut it out
/// of a parsed document) encodes as null.
pub fn object_text(out: &mut Vec<u8>, text: &str, skip: &[&str]) {
    struct Top<'b, 's>(&'b mut Vec<u8>, &'s [&'s str]);
    impl<'de> Visitor<'de> for Top<'_, '_> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
            let skip = self.1;
            object(self.0, map, |key, map| {
                if skip.contains(&key) {
                    self::skip(map)?;
                    return Ok(Member::Skip);
                }
                Ok(Member::Encode)
            })
        }
    }
    let start = out.len();
    let mut deserializer = serde_json::Deserializer::from_str(text);
    if deserializer.deserialize_map(Top(out, skip)).is_err() {
        out.truncate(start);
        out.push(NULL);
    }
}

/// Skips the value of the current member.
fn skip<'de, A: MapAccess<'de>>(map: &mut A) -> Result<(), A::Error> {
    map.next_value::<IgnoredAny>().map(|_| ())
}

/// The canonical encoding of a whole JSON text (for tests).
#[cfg(test)]
pub fn encode(json: &str) -> serde_json::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut deserializer = serde_json::Deserializer::from_str(json);
    Canonical(&mut out).deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_order_whitespace_and_escapes_do_not_matter() {
        let a = encode(r#"{"b": [1, {"y": 2, "x": "é"}], "a": null}"#).unwrap();
        let b = encode("{\"a\":null,\"b\":[1,{\"x\":\"\\u00e9\",\"y\":2}]}").unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn different_values_encode_differently() {
        let texts = [
            r#"{"a": 1}"#,
            r#"{"a": 1.0}"#,
            r#"{"a": -1}"#,
            r#"{"a": "1"}"#,
            r#"{"a": true}"#,
            r#"{"a": null}"#,
            r#"{"a": [1]}"#,
            r#"{"a": [[1]]}"#,
            r#"{"a": {}}"#,
            r#"{"b": 1}"#,
            r#"{"a": 1, "b": 1}"#,
            r#"{"ab": ""}"#,
            r#"{"a": "b"}"#,
            r#"[1, 2]"#,
            r#"[2, 1]"#,
        ];
        let encoded: Vec<Vec<u8>> = texts.iter().map(|t| encode(t).unwrap()).collect();
        for (i, a) in encoded.iter().enumerate() {
            for (j, b) in encoded.iter().enumerate() {
                assert_eq!(i == j, a == b, "{} vs {}", texts[i], texts[j]);
            }
        }
    }

    #[test]
    fn an_object_text_encodes_as_its_value_with_members_left_out() {
        let mut out = Vec::new();
        object_text(&mut out, r#"{"name": "x", "b": 1, "a": [2]}"#, &["name"]);
        assert_eq!(out, encode(r#"{"a": [2], "b": 1}"#).unwrap());
    }

    #[test]
    fn invalid_json_is_an_error() {
        assert!(encode(r#"{"a": }"#).is_err());
        assert!(encode(r#"{"a": 1} x"#).is_err());
    }
}
