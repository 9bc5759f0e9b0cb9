//! Kill one rule, not the whole flag: an alert rule naming a VWO `rule` pauses that rule only
//! (`PATCH .../features/{f}/rules/{rule}/toggle`), a resolved alert resumes it, and change
//! tracking attributes each resulting change to the alert rule. How a paused rule appears in the
//! settings file is **assumed** (left out, or its campaign `PAUSED`): both are run.

use serde_json::{json, Value};
use testkit::sentry::FakeSentry;
use testkit::vwo::{FakeRule, FakeVwo, PausedRules};
use testkit::{sample, sentry_hook_event};

use crate::both::{both_functions, Both, CLIENT_SECRET, SIGNING_SECRET, TOKEN, WEBHOOK_SECRET};
use crate::token_budget::{answer, deliver_like_vwo};

/// The sample metric alert (`critical` or `resolved`) whose action names the rule.
fn alert(file: &str) -> Vec<u8> {
    let mut body: Value = serde_json::from_slice(&sample(&format!("sentry/{file}"))).unwrap();
    body["data"]["metric_alert"]["alert_rule"]["triggers"][0]["actions"][0]["settings"] = json!([
        {"name": "feature", "value": "checkout-new-flow"},
        {"name": "environment", "value": "production"},
        {"name": "rule", "value": "risky-exp"}
    ]);
    serde_json::to_vec(&body).unwrap()
}

fn risky_experiment() -> FakeRule {
    FakeRule::testing("risky-exp", 20, ["Control", "New checkout"])
}

async fn run(mode: PausedRules, name: &str) {
    let vwo = FakeVwo::start(TOKEN).await;
    vwo.add_flag("checkout-new-flow", true);
    vwo.set_rules(
        "checkout-new-flow",
        "production",
        vec![FakeRule::rollout("rolloutRule1"), risky_experiment()],
    );
    vwo.paused_rules(mode);
    let sentry = FakeSentry::start(SIGNING_SECRET).await;
    let Both { kill, tracking } = both_functions(
        &format!("rule-kill-{name}"),
        &vwo,
        &sentry,
        &[
            ("VWO_MIN_INTERVAL_MS", "0"),
            ("RESTORE_ON_RESOLVE", "true"),
            ("ENABLE_ALLOWED_IN", "production"),
        ],
    )
    .await;
    deliver_like_vwo(&tracking, WEBHOOK_SECRET).await;
    let rule_enabled = || {
        vwo.rules("checkout-new-flow", "production")
            .iter()
            .find(|r| r.key == "risky-exp")
            .map(|r| r.enabled)
    };

    for (file, enabled) in [
        ("metric_alert.critical.json", false),
        ("metric_alert.resolved.json", true),
    ] {
        let event = sentry_hook_event(CLIENT_SECRET, "metric_alert", &alert(file), "");
        let request = lambda_http::request::from_str(&event.to_string()).unwrap();
        let (status, body) = answer(sentry_to_vwo::handle(&kill, request).await).await;
        assert_eq!(status, 200, "{name} {file}: {body}");
        assert_eq!(body["toggled"]["isEnabled"], enabled, "{body}");
        let last = vwo.toggles().pop().unwrap();
        assert_eq!(
            last.raw_path,
            "/api/v2/accounts/current/environments/production/features/checkout-new-flow/rules/risky-exp/toggle"
        );
        assert_eq!(last.body, json!({"isEnabled": enabled}));
        assert_eq!(rule_enabled(), Some(enabled), "{name}: the rule");
        // The flag and its other rule stay on.
        vwo.assert_on("checkout-new-flow", "production");
        let before = sentry.accepted_changes().len();
        deliver_like_vwo(&tracking, WEBHOOK_SECRET).await;
        let changes: Vec<Value> = sentry.accepted_changes().into_iter().skip(before).collect();
        assert_eq!(changes.len(), 1, "{name} {file}: {changes:?}");
        assert_eq!(changes[0]["flag"], "checkout-new-flow");
        assert_eq!(changes[0]["action"], "updated");
        assert_eq!(
            changes[0]["created_by"]["id"], "kill switch: Checkout p95 latency",
            "{name} {file}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rule_left_out_when_paused_is_killed_restored_and_attributed() {
    run(PausedRules::Omitted, "omitted").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rule_marked_paused_is_killed_restored_and_attributed() {
    run(PausedRules::StatusPaused, "status-paused").await;
}
