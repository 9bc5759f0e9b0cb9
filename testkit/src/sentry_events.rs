//! What the Sentry stand-in does with the events an application's Sentry SDK sends: it reads
//! Sentry's envelope format, keeps the events, groups them into issues and computes the suspect
//! flags Sentry's issue page would show.
//!
//! Sources (getsentry): the envelope format — a JSON header line, then items of a JSON header
//! line (`type`, optional `length`) and a payload (`develop.sentry.dev`, "Envelopes"); the
//! `POST /api/<project>/envelope/` endpoint, gzip-compressed by the Python SDK
//! (`sentry_sdk/transport.py`); flags on an event at `contexts.flags.values[] = {flag, result}`
//! (`sentry_sdk/feature_flags.py`, sentry-javascript `packages/core/src/utils/featureFlags.ts`);
//! suspect flags as the issue page's legacy logic computes them — flags on the event ∩ the
//! organisation's flag log, changes up to the issue's first event, the latest change of each
//! flag, at most 3 (`static/app/components/issues/suspect/useLegacyEventSuspectFlags.tsx`).
//!
//! **Simplified** (no source settles it for a stand-in): events are grouped into issues by their
//! last exception's type and value (Sentry groups by stack trace); an issue's first event is the
//! earliest `timestamp` among its events.

use std::io::Read;

use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Sentry's own cap on the flags an event carries (both SDKs keep the 100 most recent).
pub const MAX_FLAGS_PER_EVENT: usize = 100;

/// How many suspect flags the issue page shows.
pub const MAX_SUSPECT_FLAGS: usize = 3;

/// Decodes a request body by its `Content-Encoding` (none or gzip; the SDKs send nothing else
/// unless the brotli package is installed).
pub fn decode(body: &[u8], encoding: Option<&str>) -> Result<Vec<u8>, String> {
    match encoding.map(str::trim) {
        None | Some("") | Some("identity") => Ok(body.to_vec()),
        Some("gzip") => {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(body)
                .take(20 * 1024 * 1024)
                .read_to_end(&mut out)
                .map_err(|e| format!("gzip body does not decode: {e}"))?;
            Ok(out)
        }
        Some(other) => Err(format!("unsupported Content-Encoding {other:?}")),
    }
}

/// One item of an envelope: its header and its payload.
pub type Item = (Value, Vec<u8>);

/// An envelope's header and its items.
pub fn parse_envelope(bytes: &[u8]) -> Result<(Value, Vec<Item>), String> {
    let line_end = |from: usize| {
        bytes[from..]
            .iter()
            .position(|b| *b == b'\n')
            .map_or(bytes.len(), |p| from + p)
    };
    let end = line_end(0);
    let header: Value = serde_json::from_slice(&bytes[..end])
        .map_err(|e| format!("envelope header is not JSON: {e}"))?;
    let mut items = Vec::new();
    let mut at = end + 1;
    while at < bytes.len() {
        let end = line_end(at);
        if bytes[at..end].iter().all(u8::is_ascii_whitespace) {
            at = end + 1;
            continue;
        }
        let item: Value = serde_json::from_slice(&bytes[at..end])
            .map_err(|e| format!("item header is not JSON: {e}"))?;
        at = end + 1;
        let payload = match item["length"].as_u64() {
            Some(length) => {
                let stop = at + length as usize;
                let payload = bytes.get(at..stop).ok_or("item shorter than its length")?;
                at = stop + 1;
                payload.to_vec()
            }
            None => {
                let stop = line_end(at.min(bytes.len()));
                let payload = bytes.get(at..stop).unwrap_or_default().to_vec();
                at = stop + 1;
                payload
            }
        };
        items.push((item, payload));
    }
    Ok((header, items))
}

/// Problems with an event as Sentry would read it; empty if it is fine.
pub fn validate_event(event: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let id = event["event_id"].as_str().unwrap_or_default();
    if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        problems.push(format!("event_id must be 32 hex digits, not {id:?}"));
    }
    if timestamp(event).is_none() {
        problems.push("timestamp must be RFC 3339 or Unix seconds".into());
    }
    match &event["contexts"]["flags"] {
        Value::Null => {}
        flags => match flags["values"].as_array() {
            None => problems.push("contexts.flags.values must be a list".into()),
            Some(values) => {
                if values.len() > MAX_FLAGS_PER_EVENT {
                    problems.push(format!("{} flags on one event", values.len()));
                }
                for value in values {
                    if !value["flag"].is_string() || !value["result"].is_boolean() {
                        problems.push(format!("flag entry {value} is not {{flag, result}}"));
                    }
                }
            }
        },
    }
    problems
}

/// An event's time: RFC 3339 text (Python SDK) or Unix seconds (JavaScript SDK).
pub fn timestamp(event: &Value) -> Option<OffsetDateTime> {
    match &event["timestamp"] {
        Value::Number(n) => {
            let nanos = (n.as_f64()? * 1e9) as i128;
            OffsetDateTime::from_unix_timestamp_nanos(nanos).ok()
        }
        Value::String(s) => OffsetDateTime::parse(s, &Rfc3339).ok(),
        _ => None,
    }
}

/// The event's flags, as `(flag, result)`.
pub fn flags(event: &Value) -> Vec<(String, bool)> {
    event["contexts"]["flags"]["values"]
        .as_array()
        .map(|values| {
            values
                .iter()
                .filter_map(|v| Some((v["flag"].as_str()?.to_owned(), v["result"].as_bool()?)))
                .collect()
        })
        .unwrap_or_default()
}

/// The issue an event belongs to (see the module's note on grouping).
pub fn issue_title(event: &Value) -> String {
    let last = event["exception"]["values"]
        .as_array()
        .and_then(|v| v.last())
        .cloned()
        .unwrap_or(Value::Null);
    match (last["type"].as_str(), last["value"].as_str()) {
        (Some(t), Some(v)) => format!("{t}: {v}"),
        (Some(t), None) => t.to_owned(),
        _ => event["message"]
            .as_str()
            .or(event["message"]["formatted"].as_str())
            .or(event["logentry"]["message"].as_str())
            .unwrap_or("<unlabeled event>")
            .to_owned(),
    }
}

fn parse_time(text: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(text, &Rfc3339).ok()
}

/// `events` grouped into issues by title, in the order the issues began: each title and its
/// events, oldest first.
pub fn grouped(events: &[Value]) -> Vec<(String, Vec<&Value>)> {
    let mut groups: Vec<(String, Vec<&Value>)> = Vec::new();
    for event in events {
        let title = issue_title(event);
        match groups.iter_mut().find(|(t, _)| *t == title) {
            Some((_, members)) => members.push(event),
            None => groups.push((title, vec![event])),
        }
    }
    groups
}

/// The issues among `events`, each with the flags its latest event carries and the suspect
/// flags computed from `changes` (the accepted change-tracking items, oldest first) as Sentry's
/// issue page does.
pub fn issues(events: &[Value], changes: &[Value]) -> Vec<Value> {
    grouped(events)
        .into_iter()
        .enumerate()
        .map(|(i, (title, members))| {
            let first_seen = members.iter().filter_map(|e| timestamp(e)).min();
            let latest = members.last().copied().cloned().unwrap_or(Value::Null);
            let suspects = first_seen
                .map(|first| suspect_flags(&latest, first, changes))
                .unwrap_or_default();
            json!({
                "id": (i + 1).to_string(),
                "title": title,
                "count": members.len(),
                "firstSeen": first_seen.and_then(|t| t.format(&Rfc3339).ok()),
                "flags": flags(&latest).into_iter()
                    .map(|(flag, result)| json!({"flag": flag, "result": result}))
                    .collect::<Vec<Value>>(),
                "suspectFlags": suspects,
            })
        })
        .collect()
}

/// Flags on `event` that changed at or before `first_seen` (within a year), the latest change
/// of each, latest first, at most [`MAX_SUSPECT_FLAGS`]; each with how long before the issue
/// started it changed.
pub fn suspect_flags(event: &Value, first_seen: OffsetDateTime, changes: &[Value]) -> Vec<Value> {
    let on_event: Vec<String> = flags(event).into_iter().map(|(f, _)| f).collect();
    let start = first_seen - time::Duration::days(365);
    let mut window: Vec<(OffsetDateTime, &Value)> = changes
        .iter()
        .filter(|c| {
            c["flag"]
                .as_str()
                .is_some_and(|f| on_event.iter().any(|e| e == f))
        })
        .filter_map(|c| Some((parse_time(c["created_at"].as_str()?)?, c)))
        .filter(|(at, _)| *at >= start && *at <= first_seen)
        .collect();
    window.sort_by_key(|(at, _)| *at);
    let mut seen: Vec<&str> = Vec::new();
    let mut suspects = Vec::new();
    for (at, change) in window.into_iter().rev() {
        let flag = change["flag"].as_str().unwrap_or_default();
        if seen.contains(&flag) {
            continue;
        }
        seen.push(flag);
        let before = (first_seen - at).whole_milliseconds() as f64 / 1000.0;
        suspects.push(json!({
            "flag": flag,
            "action": change["action"],
            "createdAt": change["created_at"],
            "createdBy": change["created_by"],
            "secondsBeforeFirstSeen": before,
        }));
        if suspects.len() == MAX_SUSPECT_FLAGS {
            break;
        }
    }
    suspects
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(title: &str, at: &str, flags: &[(&str, bool)]) -> Value {
        json!({
            "event_id": "0123456789abcdef0123456789abcdef",
            "timestamp": at,
            "exception": {"values": [{"type": "Error", "value": title}]},
            "contexts": {"flags": {"values": flags.iter()
                .map(|(f, r)| json!({"flag": f, "result": r})).collect::<Vec<Value>>()}},
        })
    }

    fn change(flag: &str, at: &str, by: &str) -> Value {
        json!({"action": "updated", "flag": flag, "created_at": at,
            "created_by": {"id": by, "type": "email"}, "change_id": 1})
    }

    #[test]
    fn envelopes_with_and_without_lengths_parse() {
        let body = b"{\"event_id\":\"x\"}\n{\"type\":\"event\",\"length\":7}\n{\"a\":1}\n{\"type\":\"client_report\"}\n{\"b\":2}\n";
        let (header, items) = parse_envelope(body).unwrap();
        assert_eq!(header["event_id"], "x");
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].0["type"], "event");
        assert_eq!(items[0].1, b"{\"a\":1}");
        assert_eq!(items[1].1, b"{\"b\":2}");
        assert!(parse_envelope(b"{}\n{\"type\":\"event\",\"length\":99}\n{}").is_err());
    }

    #[test]
    fn suspect_flags_follow_sentrys_issue_page() {
        let changes = [
            change("search-v2", "2026-12-01T10:00:00Z", "old@example.com"),
            change("search-v2", "2026-12-01T11:59:20Z", "ana@example.com"),
            change("not-on-event", "2026-12-01T11:59:50Z", "x@example.com"),
            change("checkout", "2026-12-01T11:00:00Z", "bo@example.com"),
            change("late", "2026-12-01T12:30:00Z", "late@example.com"),
        ];
        let events = [
            event(
                "boom",
                "2026-12-01T12:00:00Z",
                &[("search-v2", true), ("checkout", false), ("late", true)],
            ),
            event(
                "boom",
                "2026-12-01T12:40:00.5Z",
                &[("search-v2", true), ("checkout", false), ("late", true)],
            ),
        ];
        let issues = issues(&events, &changes);
        assert_eq!(issues.len(), 1);
        let suspects = issues[0]["suspectFlags"].as_array().unwrap();
        // Latest change before the first event, per flag on the event, latest first.
        assert_eq!(suspects.len(), 2, "{suspects:?}");
        assert_eq!(suspects[0]["flag"], "search-v2");
        assert_eq!(suspects[0]["createdBy"]["id"], "ana@example.com");
        assert_eq!(suspects[0]["secondsBeforeFirstSeen"], 40.0);
        assert_eq!(suspects[1]["flag"], "checkout");
        assert_eq!(issues[0]["count"], 2);
    }

    #[test]
    fn at_most_three_suspects_and_none_without_flags() {
        let names = ["a", "b", "c", "d"];
        let changes: Vec<Value> = names
            .iter()
            .enumerate()
            .map(|(i, f)| change(f, &format!("2026-12-01T11:0{i}:00Z"), "p@example.com"))
            .collect();
        let flags: Vec<(&str, bool)> = names.iter().map(|f| (*f, true)).collect();
        let with = event("x", "2026-12-01T12:00:00Z", &flags);
        let suspects = suspect_flags(&with, timestamp(&with).unwrap(), &changes);
        let got: Vec<&str> = suspects
            .iter()
            .map(|s| s["flag"].as_str().unwrap())
            .collect();
        assert_eq!(got, ["d", "c", "b"]);
        let without = event("x", "2026-12-01T12:00:00Z", &[]);
        assert!(suspect_flags(&without, timestamp(&without).unwrap(), &changes).is_empty());
    }

    #[test]
    fn events_are_checked_like_sentry_reads_them() {
        let good = event("x", "2026-12-01T12:00:00.123456Z", &[("a", true)]);
        assert!(validate_event(&good).is_empty());
        let mut js = good.clone();
        js["timestamp"] = json!(1796172953.267);
        assert!(validate_event(&js).is_empty());
        let mut bad = good.clone();
        bad["contexts"]["flags"]["values"][0]["result"] = json!("true");
        bad["event_id"] = json!("nope");
        assert_eq!(validate_event(&bad).len(), 2);
    }
}
