//! The token's budget belongs to kills. VWO allows 1 request per second per token (the VWO
//! stand-in enforces it here, answering 429 as VWO does); the kill switch and change tracking
//! share the token. Ten alerts for ten flags, with VWO's webhook for each toggle arriving while
//! the next alert is handled: VWO never sees two requests of the token within a second, every
//! kill is applied, and Sentry is told each change once, as the alert rule's. Both functions run
//! as handlers in this process, on one state table in moto.

use std::time::{Duration, Instant};

use lambda_http::Body;
use serde_json::{json, Value};

use crate::both::{both_functions, Both, CLIENT_SECRET, SIGNING_SECRET, TOKEN, WEBHOOK_SECRET};
use testkit::sentry::FakeSentry;
use testkit::vwo::FakeVwo;
use testkit::{sample, sentry_hook_event, vwo_hook_event};

const FLAGS: usize = 10;

fn flag(i: usize) -> String {
    format!("flag-{i:04}")
}

pub(crate) async fn answer(response: lambda_http::Response<Body>) -> (u16, Value) {
    let body = match response.body() {
        Body::Text(t) => serde_json::from_str(t).unwrap_or(Value::Null),
        _ => Value::Null,
    };
    (response.status().as_u16(), body)
}

/// Delivers a VWO webhook as VWO does: again every second until it is answered 2xx.
pub(crate) async fn deliver_like_vwo(tracking: &vwo_to_sentry::App, auth: &str) -> Vec<Value> {
    let started = Instant::now();
    let mut answers = Vec::new();
    loop {
        let event = vwo_hook_event(
            auth,
            "feature_flag_updated",
            bridge_platform::clock::unix_secs() as i64,
        );
        let request = lambda_http::request::from_str(&event.to_string()).unwrap();
        let (status, body) = answer(vwo_to_sentry::handle(tracking, request).await).await;
        answers.push(json!({"status": status, "body": body}));
        if status == 200 {
            return answers;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "change tracking never accepted the webhook: {answers:?}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn kills_keep_the_token_and_change_tracking_takes_only_the_slots_left() {
    let vwo = FakeVwo::start(TOKEN).await;
    for i in 0..FLAGS {
        vwo.add_flag(&flag(i), true);
    }
    // A flag a person switches off by hand in the middle of the burst: its author comes from
    // VWO's timeline, a read with the token while kills need it.
    vwo.add_flag("manual-flag", true);
    vwo.enforce_rate_limit(Duration::from_secs(1));
    let sentry = FakeSentry::start(SIGNING_SECRET).await;
    let Both { kill, tracking } = both_functions(
        "budget",
        &vwo,
        &sentry,
        &[
            // VWO's 1 request/s with a margin for this busy test process (the stand-in counts
            // from when its handler runs, which load delays).
            ("VWO_MIN_INTERVAL_MS", "1300"),
            ("VWO_RETRY_BUDGET_MS", "15000"),
        ],
    )
    .await;
    // Change tracking's baseline (it lists the workspace's flags with the token).
    deliver_like_vwo(&tracking, WEBHOOK_SECRET).await;

    let mut webhooks = Vec::new();
    for i in 0..FLAGS {
        let mut alert: Value =
            serde_json::from_slice(&sample("sentry/metric_alert.critical.json")).unwrap();
        alert["data"]["metric_alert"]["alert_rule"]["triggers"][0]["actions"][0]["settings"] = json!([{"name": "feature", "value": flag(i)}, {"name": "environment", "value": "production"}]);
        let event = sentry_hook_event(
            CLIENT_SECRET,
            "metric_alert",
            &serde_json::to_vec(&alert).unwrap(),
            "",
        );
        let request = lambda_http::request::from_str(&event.to_string()).unwrap();
        let (status, body) = answer(sentry_to_vwo::handle(&kill, request).await).await;
        assert_eq!(status, 200, "kill {i}: {body}");
        assert_eq!(body["toggled"]["feature"], flag(i), "{body}");
        if i == FLAGS / 2 {
            vwo.set_enabled("manual-flag", "production", false);
            vwo.add_feed(json!({"id": 1, "type": "feature",
                "what": "Feature flag <b>manual-flag</b> disabled in production",
                "when": bridge_platform::clock::unix_secs().to_string(),
                "who": {"name": "Ana Lima"}}));
        }
        // VWO's webhook for this toggle arrives while the next alert is being handled.
        let tracking = tracking.clone();
        webhooks.push(tokio::spawn(async move {
            deliver_like_vwo(&tracking, WEBHOOK_SECRET).await
        }));
    }
    for webhook in webhooks {
        webhook.await.unwrap();
    }
    deliver_like_vwo(&tracking, WEBHOOK_SECRET).await;

    let refused = vwo.rate_violations();
    assert!(
        refused.is_empty(),
        "VWO saw two requests of the token within a second: {refused:?}"
    );
    for i in 0..FLAGS {
        assert_eq!(
            vwo.is_enabled(&flag(i), "production"),
            Some(false),
            "{}",
            flag(i)
        );
    }
    // Only the person's change cost change tracking a timeline read (with the token, in a slot
    // no kill wanted); the kill switch's changes are the alert rule's, from its records.
    let timeline_reads = vwo
        .api_requests()
        .iter()
        .filter(|r| r.raw_path.ends_with("/feeds"))
        .count();
    assert!(
        timeline_reads >= 1,
        "the manual change's author was looked up"
    );
    let changes = sentry.accepted_changes();
    let mut flags: Vec<&str> = changes
        .iter()
        .map(|c| c["flag"].as_str().unwrap())
        .collect();
    flags.sort_unstable();
    let mut expected: Vec<String> = (0..FLAGS).map(flag).collect();
    expected.push("manual-flag".into());
    expected.sort_unstable();
    assert_eq!(flags, expected, "each change once");
    for change in &changes {
        assert_eq!(change["action"], "updated");
        let by = if change["flag"] == "manual-flag" {
            "Ana Lima"
        } else {
            "kill switch: Checkout p95 latency"
        };
        assert_eq!(change["created_by"]["id"], by, "{change}");
    }
}
