//! Sentry's "Send Test Notification" delivers a real, correctly signed `event_alert.triggered`:
//! it must never reach VWO, and must say what a real alert of the rule would do.
//! Samples: `events/sentry/event_alert.test_notification*.json` (sources in docs/protocols.md).

use serde_json::{json, Value};
use testkit::answers::assert_says;
use testkit::sample;

use crate::handler::{send_alert, setup, FLAG_QUERY};

const WOULD: &str = "test notification: would turn checkout-new-flow off in production";

/// The real alert of the same rule: the committed sample with the rule's real id.
fn real_alert() -> Value {
    let mut alert: Value =
        serde_json::from_slice(&sample("sentry/event_alert.triggered.json")).unwrap();
    alert["data"]["issue_alert"]["id"] = json!(48213);
    alert
}

#[tokio::test(flavor = "multi_thread")]
async fn each_test_marker_answers_what_the_rule_would_do_and_switches_nothing() {
    let ctx = setup("test-notification", &[]).await;
    let mut by_rule_id = real_alert();
    by_rule_id["data"]["issue_alert"]["id"] = json!(-1);
    let mut by_tag = real_alert();
    by_tag["data"]["event"]["tags"]
        .as_array_mut()
        .unwrap()
        .push(json!(["sample_event", "yes"]));
    let mut by_occurrence = real_alert();
    by_occurrence["data"]["event"]["occurrence"] =
        json!({"type": 9001, "culprit": "Test notification", "issueTitle": "Test Issue"});
    let cases: [(&str, Vec<u8>, &str); 5] = [
        (
            "issue alert editor",
            sample("sentry/event_alert.test_notification.json"),
            "alert rule id -1",
        ),
        (
            "automations",
            sample("sentry/event_alert.test_notification.automations.json"),
            "alert rule id -1",
        ),
        (
            "rule id only",
            by_rule_id.to_string().into_bytes(),
            "alert rule id -1",
        ),
        (
            "sample tag only",
            by_tag.to_string().into_bytes(),
            "event tag sample_event=yes",
        ),
        (
            "occurrence only",
            by_occurrence.to_string().into_bytes(),
            "test issue occurrence",
        ),
    ];
    for (case, body, marker) in cases {
        let (status, answer, response) = send_alert(&ctx, "event_alert", &body, FLAG_QUERY).await;
        assert_eq!(status, 200, "{case}: {answer}");
        assert_eq!(answer["tested"]["message"], WOULD, "{case}");
        assert_eq!(answer["tested"]["marker"], marker, "{case}");
        assert_eq!(
            answer["tested"]["wouldToggle"],
            json!({"account": "current", "environment": "production",
                "feature": "checkout-new-flow", "isEnabled": false, "restore": false}),
            "{case}"
        );
        assert_eq!(
            response.headers()["sentry-hook-error"].to_str().unwrap(),
            WOULD,
            "{case}: Sentry keeps this header in the integration's request log"
        );
        assert!(ctx.vwo.requests().is_empty(), "{case}: VWO was called");
    }
    ctx.vwo.assert_on("checkout-new-flow", "production");

    // The same rule's real alert still switches the flag off.
    let (status, answer, _) = send_alert(
        &ctx,
        "event_alert",
        real_alert().to_string().as_bytes(),
        FLAG_QUERY,
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["toggled"]["isEnabled"], false);
    assert_eq!(ctx.vwo.toggles().len(), 1);
    ctx.vwo.assert_off("checkout-new-flow", "production");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_test_of_a_rule_that_would_do_nothing_says_so() {
    let ctx = setup("test-notification-nothing", &[]).await;
    let mut alert: Value =
        serde_json::from_slice(&sample("sentry/event_alert.test_notification.json")).unwrap();
    alert["data"]["issue_alert"]["settings"] = json!([]);
    let (status, answer, response) =
        send_alert(&ctx, "event_alert", alert.to_string().as_bytes(), "").await;
    assert_eq!(status, 200, "{answer}");
    let message = "test notification: would do nothing (no flag configured)";
    assert_eq!(answer["tested"]["message"], message);
    assert_eq!(answer["tested"]["wouldToggle"], Value::Null);
    assert_eq!(response.headers()["sentry-hook-error"], message);
    assert!(ctx.vwo.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_test_notification_with_a_bad_rule_setting_is_still_a_clear_400() {
    let ctx = setup("test-notification-bad", &[]).await;
    let mut alert: Value =
        serde_json::from_slice(&sample("sentry/event_alert.test_notification.json")).unwrap();
    alert["data"]["issue_alert"]["settings"][2]["value"] = json!("maybe");
    let (status, answer, _) = send_alert(
        &ctx,
        "event_alert",
        alert.to_string().as_bytes(),
        FLAG_QUERY,
    )
    .await;
    assert_eq!(status, 400, "{answer}");
    assert_says(&answer["error"], "isEnabled");
    assert!(ctx.vwo.requests().is_empty());
}
