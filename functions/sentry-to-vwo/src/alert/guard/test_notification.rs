//! Sentry's "Send Test Notification": a real, correctly signed alert that must never switch a flag.
//!
//! Both of Sentry's test paths — the issue-alert editor (`ProjectRuleActionsEndpoint`) and the
//! Automations UI (`OrganizationTestFireActionsEndpoint`) — fire the rule's actions, ours included,
//! on a sample event (docs/protocols.md, "Test notifications"). What marks such a delivery:
//!
//! - `data.issue_alert.id == -1`: `TEST_NOTIFICATION_ID` (`src/sentry/notifications/types.py`),
//!   kept as the rule id by `notify_sentry_app` ("# Ignore test notifications");
//! - the event tag `sample_event=yes`, set on every sample event Sentry makes for a test
//!   (`create_sample_event(..., tagged=True)`, `get_test_notification_event_data`);
//! - on the Automations path, the event's issue occurrence of type 9001 (`SendTestNotification`,
//!   culprit "Test notification"); one feature-gated version of `grouptype.py` numbers it 9888,
//!   so 9888 counts only with that culprit.
//!
//! `data.triggered_rule` is **not** a marker: it is the rule's (or detector's) name. No metric-alert
//! test path reaches a Sentry app; should one appear with the same id convention, an alert rule id
//! of `-1` is treated as a test too.

use serde_json::Value;

use bridge_sentry::webhook::Envelope;

/// Sentry's rule / action id for test notifications (`TEST_NOTIFICATION_ID`).
pub const TEST_NOTIFICATION_ID: i64 = -1;

/// `SendTestNotification.type_id` in `src/sentry/notifications/notification_action/grouptype.py`.
pub const TEST_OCCURRENCE_TYPE: i64 = 9001;

/// The number one feature-gated version of `grouptype.py` gives the same group type; it counts
/// only together with [`TEST_OCCURRENCE_CULPRIT`].
pub const GATED_TEST_OCCURRENCE_TYPE: i64 = 9888;

/// The culprit of the test occurrence (`get_test_notification_event_data`).
pub const TEST_OCCURRENCE_CULPRIT: &str = "Test notification";

/// What showed that a delivery is a test notification.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TestMarker {
    /// The alert rule's id is `-1`.
    RuleId,
    /// The event carries the tag `sample_event=yes`.
    SampleEvent,
    /// The event's occurrence is Sentry's "Test Issue" group type.
    TestOccurrence,
}

impl TestMarker {
    /// How the marker is named in answers and logs.
    pub fn describe(self) -> &'static str {
        match self {
            TestMarker::RuleId => "alert rule id -1",
            TestMarker::SampleEvent => "event tag sample_event=yes",
            TestMarker::TestOccurrence => "test issue occurrence",
        }
    }
}

/// The first test marker the webhook carries, if any.
pub fn detect(resource: &str, envelope: &Envelope) -> Option<TestMarker> {
    let data = &envelope.data;
    let rule_id = match resource {
        "event_alert" => &data.issue_alert["id"],
        "metric_alert" => &data.metric_alert["alert_rule"]["id"],
        _ => &Value::Null,
    };
    if is_test_id(rule_id) {
        return Some(TestMarker::RuleId);
    }
    if has_sample_tag(&data.event.tags) {
        return Some(TestMarker::SampleEvent);
    }
    if is_test_occurrence(&data.event.occurrence) {
        return Some(TestMarker::TestOccurrence);
    }
    None
}

/// `-1` as a number or as text (older Sentry versions pass the id through unconverted).
fn is_test_id(id: &Value) -> bool {
    match id {
        Value::Number(n) => n.as_i64() == Some(TEST_NOTIFICATION_ID),
        Value::String(s) => s.trim().parse::<i64>().ok() == Some(TEST_NOTIFICATION_ID),
        _ => false,
    }
}

/// `sample_event=yes` in any of the shapes Sentry writes tags: `[[key, value]]` (`as_dict()`),
/// `[{"key", "value"}]` (the API serializer) or `{key: value}`.
fn has_sample_tag(tags: &Value) -> bool {
    let is_sample = |key: &Value, value: &Value| key == "sample_event" && value == "yes";
    match tags {
        Value::Array(items) => items.iter().any(|tag| match tag {
            Value::Array(pair) if pair.len() == 2 => is_sample(&pair[0], &pair[1]),
            Value::Object(_) => is_sample(&tag["key"], &tag["value"]),
            _ => false,
        }),
        Value::Object(map) => map.get("sample_event").is_some_and(|v| v == "yes"),
        _ => false,
    }
}

fn is_test_occurrence(occurrence: &Value) -> bool {
    match occurrence["type"].as_i64() {
        Some(TEST_OCCURRENCE_TYPE) => true,
        Some(GATED_TEST_OCCURRENCE_TYPE) => occurrence["culprit"] == TEST_OCCURRENCE_CULPRIT,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn envelope(data: Value) -> Envelope {
        Envelope::parse(
            json!({"action": "triggered", "data": data})
                .to_string()
                .as_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn each_marker_is_found_where_sentry_puts_it() {
        let cases = [
            (json!({"issue_alert": {"id": -1}}), TestMarker::RuleId),
            (json!({"issue_alert": {"id": "-1"}}), TestMarker::RuleId),
            (
                json!({"event": {"tags": [["level", "error"], ["sample_event", "yes"]]}}),
                TestMarker::SampleEvent,
            ),
            (
                json!({"event": {"tags": [{"key": "sample_event", "value": "yes"}]}}),
                TestMarker::SampleEvent,
            ),
            (
                json!({"event": {"tags": {"sample_event": "yes"}}}),
                TestMarker::SampleEvent,
            ),
            (
                json!({"event": {"occurrence": {"type": 9001, "culprit": "Test notification"}}}),
                TestMarker::TestOccurrence,
            ),
            (
                json!({"event": {"occurrence": {"type": 9888, "culprit": "Test notification"}}}),
                TestMarker::TestOccurrence,
            ),
        ];
        for (data, marker) in cases {
            assert_eq!(
                detect("event_alert", &envelope(data.clone())),
                Some(marker),
                "{data}"
            );
        }
        let metric = envelope(json!({"metric_alert": {"alert_rule": {"id": -1}}}));
        assert_eq!(detect("metric_alert", &metric), Some(TestMarker::RuleId));
    }

    #[test]
    fn real_alerts_carry_no_marker() {
        for data in [
            json!({}),
            json!({"issue_alert": {"id": 123}, "triggered_rule": "Test notification"}),
            json!({"issue_alert": {"id": "-12"}}),
            json!({"event": {"tags": [["sample_event", "no"], ["yes", "sample_event"]]}}),
            json!({"event": {"tags": [["sample_event"]], "occurrence": {"type": 1}}}),
            json!({"event": {"occurrence": {"type": 9888, "culprit": "checkout"}}}),
            json!({"event": {"tags": "sample_event=yes", "occurrence": "9001"}}),
        ] {
            assert_eq!(
                detect("event_alert", &envelope(data.clone())),
                None,
                "{data}"
            );
        }
        // An issue alert's id means nothing on another resource.
        let issue = envelope(json!({"issue_alert": {"id": -1}}));
        assert_eq!(detect("issue", &issue), None);
    }
}
