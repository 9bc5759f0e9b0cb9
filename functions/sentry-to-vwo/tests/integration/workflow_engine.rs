//! Sentry's workflow engine sends the Sentry-app payloads now (docs/protocols.md, "Sentry's
//! workflow engine"): issue alerts with the workflow's id and name, metric alerts with the
//! detector's name and an offset id, and a new `activity_alert` resource. The first two switch
//! the flag and name the workflow in the kill record; activity alerts never switch.

use bridge_state::kill_record::{record_key, KillRecords};
use testkit::{sample, sentry_hook_event};

use crate::durable::{kill_switch, send, setup, SYNCHRONOUS};

#[tokio::test(flavor = "multi_thread")]
async fn workflow_engine_alerts_switch_and_the_kill_record_names_the_workflow() {
    let ctx = setup(
        "workflow-engine",
        &[("SENTRY_APP_ID", "4821"), ("FAST_PATH_MS", SYNCHRONOUS)],
    )
    .await;
    let app = kill_switch(&ctx).await;
    let aws = bridge_platform::aws::aws_config().await;
    let records = KillRecords::new(
        aws_sdk_dynamodb::Client::new(&aws),
        &ctx.vars["STATE_TABLE"],
    );
    // Keyed by VWO's environment id: the kill switch knows it (its guard rails read the
    // environments at cold start; change tracking looks under the id too).
    let key = record_key("current", "1", "checkout-new-flow");
    for (resource, file, rule, rule_id) in [
        (
            "event_alert",
            "sentry/event_alert.triggered.workflow_engine.json",
            "Checkout errors (automation)",
            "4521987",
        ),
        (
            "metric_alert",
            "sentry/metric_alert.critical.workflow_engine.json",
            "Checkout p95 latency (detector)",
            "1000012345",
        ),
    ] {
        ctx.vwo.set_enabled("checkout-new-flow", "production", true);
        let (status, body, _) = send(
            &app,
            sentry_hook_event(&ctx.secret, resource, &sample(file), ""),
        )
        .await;
        assert_eq!(status, 200, "{file}: {body}");
        assert_eq!(body["toggled"]["feature"], "checkout-new-flow", "{file}");
        ctx.vwo.assert_off("checkout-new-flow", "production");
        let found = records.find(std::slice::from_ref(&key)).await.unwrap();
        let record = &found[&key];
        assert_eq!(record.rule.as_deref(), Some(rule), "{file}");
        assert_eq!(record.rule_id.as_deref(), Some(rule_id), "{file}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn activity_alerts_are_answered_ignored_with_the_reason() {
    let ctx = setup("activity-alert", &[]).await;
    let app = kill_switch(&ctx).await;
    let (status, body, _) = send(
        &app,
        sentry_hook_event(
            &ctx.secret,
            "activity_alert",
            &sample("sentry/activity_alert.triggered.json"),
            crate::durable::FLAG_QUERY,
        ),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["ignored"],
        "activity_alert.triggered: issue activity alerts never switch a flag (alert rules and metric alerts do)"
    );
    assert!(ctx.vwo.toggles().is_empty());
}
