//! Sentry integration-platform webhooks: headers, envelope and verification.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use serde_json::Value;

use bridge_platform::{signature, Error, Result};

/// Every `Sentry-Hook-Resource` value Sentry sends to an integration (Sentry's docs, "Webhooks";
/// `activity_alert` from the workflow engine, `src/sentry/sentry_apps/event_types.py`).
pub const RESOURCES: &[&str] = &[
    "metric_alert",
    "event_alert",
    "activity_alert",
    "issue",
    "error",
    "installation",
    "comment",
];

/// Header naming the resource (`metric_alert`, `event_alert`, `issue`, ...).
pub const RESOURCE_HEADER: &str = "sentry-hook-resource";
/// Header with the Unix time (seconds) at which Sentry sent the webhook.
pub const TIMESTAMP_HEADER: &str = "sentry-hook-timestamp";
/// Header with the lowercase hex HMAC-SHA256 of the body, keyed with the client secret.
pub const HOOK_SIGNATURE_HEADER: &str = "sentry-hook-signature";
/// Header Sentry signs its integration platform's requests with (an alert rule's drop-downs and
/// its save check): the same HMAC-SHA256 with the client secret.
pub const APP_SIGNATURE_HEADER: &str = "sentry-app-signature";

/// How far ahead of our clock a timestamp may be (clock skew between Sentry and AWS).
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(60);

/// The body shared by all Sentry webhooks: `action`, and the parts of `data` the bridge reads.
/// Everything else (notably the event with its stack trace, most of the bytes) is skipped while
/// parsing, without being built in memory.
#[derive(Clone, Debug, Deserialize)]
pub struct Envelope {
    /// What happened to the resource (`triggered`, `critical`, `created`, ...).
    pub action: String,
    /// The resource's details that matter here.
    #[serde(default)]
    pub data: AlertData,
}

/// The parts of a webhook's `data` the bridge reads. Each is kept as JSON (`Null` when absent),
/// so an unexpected type in Sentry's payload never fails the parse.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct AlertData {
    /// `event_alert`: the rule's name.
    #[serde(default)]
    pub triggered_rule: Value,
    /// `event_alert`: `{"title", "settings": [{"name", "value"}]}` from an alert-rule action.
    #[serde(default)]
    pub issue_alert: Value,
    /// `metric_alert.*`: the incident and its `alert_rule` (name, triggers and their actions).
    #[serde(default)]
    pub metric_alert: Value,
    /// `issue.*`: the issue (`shortId`, `web_url`, ...).
    #[serde(default)]
    pub issue: Value,
    /// `event_alert`: the event; only its link, test markers, time and flags are kept (the
    /// event can be ~1 MiB).
    #[serde(default)]
    pub event: EventSummary,
    /// `error.created`: the error event, read as `event` is.
    #[serde(default)]
    pub error: EventSummary,
    /// `metric_alert.*`: the link to the alert in Sentry.
    #[serde(default)]
    pub web_url: Value,
}

/// The fields of an `event_alert`'s event the bridge reads; the rest (stack traces, breadcrumbs:
/// most of the bytes) is skipped while parsing. Any other shape of `event` (absent, `null`, not an
/// object) reads as all `Null`, never as a parse failure.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EventSummary {
    /// `event.web_url`, the event's page in Sentry (`Null` when absent).
    pub web_url: Value,
    /// `event.tags`, `[[key, value], ...]` as `Event.as_dict()` writes them (`Null` when absent):
    /// read for the `sample_event` tag of Sentry's test notifications.
    pub tags: Value,
    /// `event.occurrence` (camel-cased `IssueOccurrence.to_dict()`, present for issue platform
    /// events such as the workflow engine's test notification; `Null` when absent).
    pub occurrence: Value,
    /// `event.datetime`, the event's time (`Event.as_dict()`; `Null` when absent).
    pub datetime: Value,
    /// `event.issue_id`, the issue's numeric id as a string (`_webhook_event_data` adds it;
    /// `Null` when absent).
    pub issue_id: Value,
    /// `event.contexts.flags.values`: the flags the application's Sentry SDK recorded, each
    /// with its boolean result (Sentry keeps the 100 most recent; other shapes are skipped).
    pub flags: Vec<EventFlag>,
    /// Whether the event had a `contexts.flags` context at all.
    pub has_flags_context: bool,
}

impl EventSummary {
    /// The value of the event's tag `key` (`environment`, `release`, ...), if it has one.
    pub fn tag(&self, key: &str) -> Option<&str> {
        let tags = self.tags.as_array()?;
        tags.iter()
            .find(|t| t[0].as_str() == Some(key))
            .and_then(|t| t[1].as_str())
    }

    /// The issue's id: `issue_id`, a number sent as a string (or as a number).
    pub fn issue(&self) -> Option<String> {
        match &self.issue_id {
            Value::String(id) if !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) => {
                Some(id.clone())
            }
            Value::Number(n) => n.as_u64().map(|n| n.to_string()),
            _ => None,
        }
    }
}

/// One flag evaluation on an event (`{"flag": "search-v2", "result": true}`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventFlag {
    /// The flag's key.
    pub flag: String,
    /// What it evaluated to.
    pub result: bool,
}

/// Most flag evaluations read from one event (Sentry's SDKs keep 100).
const MAX_EVENT_FLAGS: usize = 1000;

/// The flags of an event's `contexts` (see [`EventSummary::flags`]), and whether it had any.
fn flags_of(contexts: &Value) -> (Vec<EventFlag>, bool) {
    let Some(values) = contexts.get("flags").map(|f| &f["values"]) else {
        return (Vec::new(), false);
    };
    let flags = values
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| {
            Some(EventFlag {
                flag: v["flag"].as_str().filter(|f| !f.is_empty())?.to_owned(),
                result: v["result"].as_bool()?,
            })
        })
        .take(MAX_EVENT_FLAGS)
        .collect();
    (flags, true)
}

impl<'de> serde::Deserialize<'de> for EventSummary {
    fn deserialize<D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> std::result::Result<Self, D::Error> {
        deserializer.deserialize_any(EventSummaryVisitor)
    }
}

struct EventSummaryVisitor;

impl<'de> serde::de::Visitor<'de> for EventSummaryVisitor {
    type Value = EventSummary;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(
        self,
        mut map: A,
    ) -> std::result::Result<EventSummary, A::Error> {
        let mut link = EventSummary::default();
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match key.as_ref() {
                "web_url" => link.web_url = map.next_value()?,
                "tags" => link.tags = map.next_value()?,
                "occurrence" => link.occurrence = map.next_value()?,
                "datetime" => link.datetime = map.next_value()?,
                "issue_id" => link.issue_id = map.next_value()?,
                "contexts" => {
                    (link.flags, link.has_flags_context) = flags_of(&map.next_value::<Value>()?)
                }
                _ => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        Ok(link)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(
        self,
        mut seq: A,
    ) -> std::result::Result<EventSummary, A::Error> {
        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(EventSummary::default())
    }

    fn visit_bool<E>(self, _: bool) -> std::result::Result<EventSummary, E> {
        Ok(EventSummary::default())
    }
    fn visit_i64<E>(self, _: i64) -> std::result::Result<EventSummary, E> {
        Ok(EventSummary::default())
    }
    fn visit_u64<E>(self, _: u64) -> std::result::Result<EventSummary, E> {
        Ok(EventSummary::default())
    }
    fn visit_f64<E>(self, _: f64) -> std::result::Result<EventSummary, E> {
        Ok(EventSummary::default())
    }
    fn visit_str<E>(self, _: &str) -> std::result::Result<EventSummary, E> {
        Ok(EventSummary::default())
    }
    fn visit_unit<E>(self) -> std::result::Result<EventSummary, E> {
        Ok(EventSummary::default())
    }
}

impl Envelope {
    /// Parses a body that has already been verified.
    pub fn parse(body: &[u8]) -> Result<Self> {
        bridge_platform::request::parse_object(body, "a Sentry webhook")
    }
}

/// Checks `Sentry-Hook-Signature` against the raw body, in constant time.
pub fn verify_signature(secret: &[u8], body: &[u8], signature: Option<&str>) -> Result<()> {
    let signature = signature.ok_or(Error::Unauthorized("missing Sentry-Hook-Signature"))?;
    if signature::verify_hex(secret, body, signature) {
        Ok(())
    } else {
        Err(Error::Unauthorized("invalid Sentry-Hook-Signature"))
    }
}

/// Checks `Sentry-Hook-Timestamp`: present, numeric, not older than `max_age` and not in the future
/// beyond [`MAX_CLOCK_SKEW`].
///
/// Sentry's signature does not cover this header, so the check limits how long a captured
/// request can be replayed as is; it cannot stop a replay with a forged fresh timestamp.
pub fn verify_timestamp(timestamp: Option<&str>, max_age: Duration, now: SystemTime) -> Result<()> {
    let raw = timestamp.ok_or(Error::Unauthorized("missing Sentry-Hook-Timestamp"))?;
    // Sentry sends whole seconds; tolerate a fractional part.
    let seconds: f64 = raw
        .parse()
        .ok()
        .filter(|s: &f64| s.is_finite() && *s >= 0.0)
        .ok_or(Error::Unauthorized(
            "Sentry-Hook-Timestamp is not a Unix time",
        ))?;
    let now = now
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    if seconds + max_age.as_secs_f64() < now {
        return Err(Error::Unauthorized("Sentry-Hook-Timestamp is too old"));
    }
    if seconds > now + MAX_CLOCK_SKEW.as_secs_f64() {
        return Err(Error::Unauthorized(
            "Sentry-Hook-Timestamp is in the future",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_events_link_and_markers_are_read_and_any_shape_of_event_parses() {
        let e = Envelope::parse(br#"{"action":"triggered","data":{"event":{"title":"x","tags":[["a","b"]],"occurrence":{"type":9001},"web_url":"https://s/e/1"},"web_url":"https://s/r/2"}}"#).unwrap();
        assert_eq!(e.data.event.web_url, "https://s/e/1");
        assert_eq!(e.data.event.tags, serde_json::json!([["a", "b"]]));
        assert_eq!(e.data.event.occurrence["type"], 9001);
        assert_eq!(e.data.web_url, "https://s/r/2");
        for event in ["null", "3", "\"text\"", "[1,{}]", "true", "{}"] {
            let body = format!(r#"{{"action":"triggered","data":{{"event":{event}}}}}"#);
            let e = Envelope::parse(body.as_bytes()).unwrap();
            assert_eq!(e.data.event, EventSummary::default(), "{event}");
        }
    }

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn timestamps_inside_the_window_pass() {
        let max = Duration::from_secs(300);
        assert!(verify_timestamp(Some("1000"), max, at(1000)).is_ok());
        assert!(verify_timestamp(Some("1000"), max, at(1300)).is_ok());
        assert!(verify_timestamp(Some("1000.5"), max, at(1010)).is_ok());
        assert!(verify_timestamp(Some("1050"), max, at(1000)).is_ok());
    }

    #[test]
    fn stale_future_missing_and_garbage_timestamps_fail() {
        let max = Duration::from_secs(300);
        for (ts, now) in [
            (Some("1000"), 1301),
            (Some("2000"), 1000),
            (None, 1000),
            (Some("abc"), 1000),
            (Some("-5"), 1000),
            (Some("NaN"), 1000),
            (Some("inf"), 1000),
        ] {
            let err = verify_timestamp(ts, max, at(now)).unwrap_err();
            assert_eq!(err.status(), 401, "{ts:?}");
        }
    }

    #[test]
    fn signatures_are_checked_against_the_raw_body() {
        let body = br#"{"action":"triggered"}"#;
        let sig = signature::sign_hex(b"s", body);
        assert!(verify_signature(b"s", body, Some(&sig)).is_ok());
        assert!(verify_signature(b"s", body, None).is_err());
        assert!(verify_signature(b"t", body, Some(&sig)).is_err());
    }

    #[test]
    fn envelope_keeps_data_as_json() {
        let env = Envelope::parse(
            br#"{"action":"critical","data":{"x":1,"event":{"big":[1,2,3]},"triggered_rule":"r","metric_alert":{"id":"7"}}}"#,
        )
        .unwrap();
        assert_eq!(env.action, "critical");
        assert_eq!(env.data.triggered_rule, "r");
        assert_eq!(env.data.metric_alert["id"], "7");
        assert_eq!(env.data.issue, Value::Null);
        assert_eq!(Envelope::parse(b"[1]").unwrap_err().status(), 400);
        assert_eq!(
            Envelope::parse(br#"["critical"]"#).unwrap_err().status(),
            400
        );
        assert_eq!(
            Envelope::parse(br#"{"data":{}}"#).unwrap_err().status(),
            400
        );
    }
}
