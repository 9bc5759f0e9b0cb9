//! Places in the text of JSON that serde_json has read once already: where a value starts,
//! where an object begins and ends, a string's value, and one member of an object, found
//! without reading the members after it. The text is valid JSON (serde_json said so), which is
//! what lets this module step over the punctuation between members, strings without escapes
//! (they end at the next quote, searched for with SIMD by memchr) and numbers and literals (at
//! the next delimiter); every other value is read by serde_json itself (its own skipping, no
//! tree of values). Stepping over a campaign's first members so, rather than reading each with
//! serde_json, made finding its `id` 1.8× faster in VWO's layout (97 instead of 178 ns a
//! campaign). Stepping over all of a feature's members so was slower than serde_json's visit
//! (a few dozen short strings: BENCHMARKS.md).

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

/// Where `part` (a slice of `text`) starts in `text`.
pub fn offset(text: &str, part: &str) -> usize {
    (part.as_ptr() as usize).saturating_sub(text.as_ptr() as usize)
}

/// The text of an object in `text`, from its `{` to its `}`, found from where its first
/// member's value starts and its last member's value ends: before the first value, JSON allows
/// only whitespace, `:`, the key (a string) and `{`; after the last, whitespace and `}`.
pub fn object_span(text: &str, first_value: usize, last_end: usize) -> Option<&str> {
    let bytes = text.as_bytes();
    let back_over_space = |mut i: usize| {
        while i > 0 && bytes[i - 1].is_ascii_whitespace() {
            i -= 1;
        }
        i
    };
    let mut i = back_over_space(first_value);
    (i > 0 && bytes[i - 1] == b':').then_some(())?;
    i = back_over_space(i - 1);
    (i > 0 && bytes[i - 1] == b'"').then_some(())?;
    i -= 1;
    // The key's opening quote: the first quote before it that no backslash escapes.
    loop {
        i = i.checked_sub(1)?;
        if bytes[i] == b'"' {
            let slashes = bytes[..i].iter().rev().take_while(|b| **b == b'\\').count();
            if slashes % 2 == 0 {
                break;
            }
        }
    }
    i = back_over_space(i);
    (i > 0 && bytes[i - 1] == b'{').then_some(())?;
    let start = i - 1;
    let mut end = last_end;
    while bytes.get(end).is_some_and(u8::is_ascii_whitespace) {
        end += 1;
    }
    (bytes.get(end) == Some(&b'}')).then_some(())?;
    text.get(start..=end)
}

/// The value (its JSON text) of the first member named `name` of `object`, the text of one
/// JSON object that serde_json has read once already, reading its members up to that one and no
/// further (a campaign's `id` comes before its variations, which are most of its text). `None`
/// when the object has no such member, or `object` is not an object.
pub fn member<'a>(object: &'a str, name: &str) -> Option<&'a str> {
    let bytes = object.as_bytes();
    let mut at = space(bytes, 0);
    (bytes.get(at) == Some(&b'{')).then_some(())?;
    loop {
        let found = member_after(object, at + 1)?;
        if is_name(found.key, name) {
            return object.get(found.value);
        }
        at = space(bytes, found.value.end);
        (bytes.get(at) == Some(&b',')).then_some(())?;
    }
}

/// Where the object's members that follow `after` end (the end of the last one's value),
/// `after` being where a member's value ends in `text`, JSON that serde_json has read once
/// already; `None` when no member follows.
pub fn members_end(text: &str, after: usize) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut end = None;
    let mut at = space(bytes, after);
    while bytes.get(at) == Some(&b',') {
        let next = member_after(text, at + 1)?.value.end;
        end = Some(next);
        at = space(bytes, next);
    }
    end
}

/// One member of an object: its key's text (quotes included) and where its value is.
struct Member<'a> {
    key: &'a str,
    value: std::ops::Range<usize>,
}

/// The member that starts at `at` in `text` (just after the object's `{` or a `,`, whitespace
/// allowed); `None` when the object ends there instead.
fn member_after(text: &str, at: usize) -> Option<Member<'_>> {
    let bytes = text.as_bytes();
    let key_start = space(bytes, at);
    (bytes.get(key_start) == Some(&b'"')).then_some(())?;
    let key_end = value_end(text, key_start)?;
    let colon = space(bytes, key_end);
    (bytes.get(colon) == Some(&b':')).then_some(())?;
    let value_start = space(bytes, colon + 1);
    Some(Member {
        key: text.get(key_start..key_end)?,
        value: value_start..value_end(text, value_start)?,
    })
}

/// The first position from `at` that is not whitespace. Between the tokens of JSON that
/// serde_json has read, only JSON's whitespace can stand (RFC 8259 §2), all of which
/// `is_ascii_whitespace` covers.
fn space(bytes: &[u8], mut at: usize) -> usize {
    while bytes.get(at).is_some_and(u8::is_ascii_whitespace) {
        at += 1;
    }
    at
}

/// Where the value at `at` in `text` ends: a scalar that needs no reading by [`scalar_end`],
/// any other value read by serde_json (nothing after it is read: serde_json only complains
/// about trailing text when asked to, so a well-formed value costs no error).
fn value_end(text: &str, at: usize) -> Option<usize> {
    if let Some(end) = scalar_end(text.as_bytes(), at) {
        return Some(end);
    }
    let rest = text.get(at..)?;
    let value = <&RawValue>::deserialize(&mut serde_json::Deserializer::from_str(rest)).ok()?;
    Some(offset(text, value.get()) + value.get().len())
}

/// Where the scalar at `at` ends when it is one that needs no reading: a string without
/// escapes (all of VWO's keys and most of its values) ends at its next quote; a number, `true`,
/// `false` or `null` at the first byte that cannot be part of one. `None` for anything else.
fn scalar_end(bytes: &[u8], at: usize) -> Option<usize> {
    let rest = bytes.get(at..)?;
    match rest.first()? {
        b'"' => {
            // Searched in the rest of the text with SIMD (memchr): the string's end is within
            // the first vector loaded for all but long strings.
            let inner = rest.get(1..)?;
            let close = memchr::memchr2(b'"', b'\\', inner)?;
            (inner[close] == b'"').then_some(at + close + 2)
        }
        b'{' | b'[' => None,
        _ => Some(
            at + rest
                .iter()
                .position(|b| matches!(b, b',' | b'}' | b']') || b.is_ascii_whitespace())
                .unwrap_or(rest.len()),
        ),
    }
}

/// A string value, from its JSON text; borrowed unless it needs unescaping.
pub fn string(text: &str) -> Option<Cow<'_, str>> {
    let inner = text.strip_prefix('"').and_then(|t| t.strip_suffix('"'))?;
    if inner.contains('\\') {
        return serde_json::from_str::<String>(text).ok().map(Cow::Owned);
    }
    Some(Cow::Borrowed(inner))
}

/// Whether `key`, a JSON string's text, is `name`: compared as written, or after unescaping
/// when it has escapes (`"\u0069d"` is `id`).
fn is_name(key: &str, name: &str) -> bool {
    string(key).is_some_and(|k| k == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Objects of every shape, laid out with every kind of spacing, built from a fixed seed:
    /// `member` finds what serde_json finds.
    #[test]
    fn a_member_is_what_serde_json_reads_in_generated_objects() {
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let scalars = [
            "1",
            "-0.5e-3",
            "true",
            "false",
            "null",
            r#""x""#,
            r#""a\"}b""#,
            r#""\\""#,
            r#""\u00e9,]""#,
            r#""""#,
            "{}",
            "[]",
            r#"{"id":[1,{"id":2}]}"#,
            r#"["id",{"k":"}"}]"#,
        ];
        let names = ["id", "key", r#"i\u0064"#, "ids", "i", r#"x\"id"#, "status"];
        let spaces = ["", " ", "\n  ", "\t", "\r\n"];
        for _ in 0..2000 {
            let mut used = Vec::new();
            let mut text = format!("{}{{", spaces[next(5) as usize]);
            for i in 0..next(6) {
                let name = names[next(names.len() as u64) as usize];
                // One member a name (`i\u0064` is `id`): serde_json keeps the last of two.
                let unescaped = name.replace(r#"\u0064"#, "d");
                if used.contains(&unescaped) {
                    continue;
                }
                used.push(unescaped);
                let value = scalars[next(scalars.len() as u64) as usize];
                let sp = |n: u64| spaces[n as usize];
                text += &format!(
                    "{}{}\"{name}\"{}:{}{value}{}",
                    if i > 0 && text.trim_end().len() > 1 {
                        ","
                    } else {
                        ""
                    },
                    sp(next(5)),
                    sp(next(5)),
                    sp(next(5)),
                    sp(next(5)),
                );
            }
            text += "}";
            let parsed: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
            let found = member(&text, "id").map(|v| serde_json::from_str(v).unwrap());
            assert_eq!(found.as_ref(), parsed.get("id"), "{text}");
        }
    }

    #[test]
    fn the_members_after_a_value_end_where_the_last_one_does() {
        let text = r#"{"a": 1 , "b" : [2, {"c": 3}],"d":"}"} "#;
        let after = text.find('1').unwrap() + 1;
        assert_eq!(members_end(text, after), Some(text.len() - 2));
        assert_eq!(members_end(text, text.len() - 2), None);
        assert_eq!(members_end(r#"{"a": 1}"#, 7), None);
    }

    #[test]
    fn a_member_is_found_by_name_whatever_comes_before_it() {
        let get = |object: &str, name: &str| member(object, name).map(str::to_owned);
        let campaign =
            r#"{"status": "RUNNING", "type": "FLAG_ROLLOUT", "id": 7, "variations": [{"id": 1}]}"#;
        assert_eq!(get(campaign, "id").as_deref(), Some("7"));
        assert_eq!(get(campaign, "type").as_deref(), Some(r#""FLAG_ROLLOUT""#));
        // Only the object's own members: an `id` inside a variation is not the campaign's.
        assert_eq!(
            get(r#"{"variations": [{"id": 1}], "key": "k"}"#, "id"),
            None
        );
        assert_eq!(
            get(" \n{ \"a\" :\t{\"id\":2} ,\r\n \"id\" : \"c-1\" }", "id").as_deref(),
            Some(r#""c-1""#)
        );
        assert_eq!(get(r#"{"\u0069d": 3}"#, "id").as_deref(), Some("3"));
        assert_eq!(get(r#"{"i\"d": 3, "id": 4}"#, "id").as_deref(), Some("4"));
        // Scalars of every kind before it, and strings with escapes (read by serde_json).
        let scalars = r#"{"a":"x\"y}","b":-1.5e3,"c":true,"d":null,"e":"\\","f":[],"id":5}"#;
        assert_eq!(get(scalars, "id").as_deref(), Some("5"));
        assert_eq!(get(scalars, "a").as_deref(), Some(r#""x\"y}""#));
        assert_eq!(get(scalars, "b").as_deref(), Some("-1.5e3"));
        assert_eq!(get(scalars, "e").as_deref(), Some(r#""\\""#));
        assert_eq!(get(r#"{"id":7}"#, "id").as_deref(), Some("7"));
        assert_eq!(
            get("{\"x\":1\n,\"id\":false\n}", "id").as_deref(),
            Some("false")
        );
        assert_eq!(get("{}", "id"), None);
        assert_eq!(get(" { } ", "id"), None);
        assert_eq!(get("[1]", "id"), None);
        assert_eq!(get(r#""id""#, "id"), None);
        // The first of two members with the name, as the members after it are not read.
        assert_eq!(get(r#"{"id": 1, "id": 2}"#, "id").as_deref(), Some("1"));
    }

    #[test]
    fn an_object_is_found_from_its_members_whatever_its_keys_and_spacing() {
        for object in [
            r#"{"id": 1, "key": "a"}"#,
            "{\n  \"i\\\"d\" :\t1 ,\"key\":\"a\"\n}",
            r#"{"\\": 1,"key":"a"}"#,
        ] {
            let text = format!("[{object}, 2]");
            // Where serde_json's pass sees the first value start and the last one end.
            let first_value = text
                .find(" 1")
                .or_else(|| text.find("\t1"))
                .or_else(|| text.find(": 1"))
                .unwrap();
            let first_value = first_value + text[first_value..].find('1').unwrap();
            let last_end = text.find("\"a\"").unwrap() + 3;
            assert_eq!(
                object_span(&text, first_value, last_end),
                Some(object),
                "{object}"
            );
        }
        assert_eq!(object_span("[1, 2]", 1, 2), None);
    }
}
