//! Dry runs, per alert rule (`dryRun` in the rule's settings or the URL) and for the whole
//! function (`DRY_RUN`): verified and decided as usual, VWO asked only whether it has the flag,
//! nothing recorded or switched, and the answer says what would have been done.

use serde_json::{json, Value};
use testkit::answers::assert_says;
use testkit::sentry_hook_event;

use crate::durable::{critical, kill_switch, send, setup, FLAG_QUERY, SYNCHRONOUS};
use crate::moto;

/// The critical sample whose alert rule's action asks for a dry run of `feature`.
fn dry_run_alert(feature: &str) -> Vec<u8> {
    let mut body: Value = serde_json::from_slice(&critical()).unwrap();
    body["data"]["metric_alert"]["alert_rule"]["triggers"][0]["actions"][0]["settings"] = json!([
        {"name": "feature", "value": feature},
        {"name": "environment", "value": "production"},
        {"name": "dryRun", "value": "true"}
    ]);
    serde_json::to_vec(&body).unwrap()
}

const WOULD: &str = "dry run: would turn checkout-new-flow off in production (VWO has the flag there; nothing was switched)";

#[tokio::test(flavor = "multi_thread")]
async fn a_rule_in_dry_run_switches_nothing_records_nothing_and_says_what_it_would_do() {
    let ctx = setup("dry-run-rule", &[("FAST_PATH_MS", SYNCHRONOUS)]).await;
    let app = kill_switch(&ctx).await;
    let body = dry_run_alert("checkout-new-flow");
    for _ in 0..2 {
        // Twice the same signed body: nothing was recorded, so it is no replay either.
        let (status, answer, _) = send(
            &app,
            sentry_hook_event(&ctx.secret, "metric_alert", &body, ""),
        )
        .await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["dryRun"]["message"], WOULD);
        assert_eq!(answer["dryRun"]["wouldToggle"]["isEnabled"], false);
        assert_eq!(answer["dryRun"]["vwoStatus"], 200);
    }
    // Reads only: the flag's rules, once per dry run (besides the guard rails' environments,
    // read at cold start).
    let asked = ctx.vwo.api_requests();
    assert!(asked.iter().all(|r| r.method == "GET"), "{asked:?}");
    let rules = asked
        .iter()
        .filter(|r| r.raw_path == "/api/v2/accounts/current/environments/production/features/checkout-new-flow/rules")
        .count();
    assert_eq!(rules, 2, "{asked:?}");
    assert!(ctx.vwo.toggles().is_empty());
    assert_eq!(moto().queue_depth(&ctx.queue_url).await, 0);
    ctx.vwo.assert_on("checkout-new-flow", "production");

    // The same rule without dryRun switches the flag.
    let (status, answer, _) = send(
        &app,
        sentry_hook_event(&ctx.secret, "metric_alert", &critical(), FLAG_QUERY),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["toggled"]["isEnabled"], false);
    assert_eq!(ctx.vwo.toggles().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn dry_run_for_the_whole_function_switches_no_rule_and_an_unknown_flag_fails_as_it_would() {
    let ctx = setup("dry-run-all", &[("DRY_RUN", "true")]).await;
    let app = kill_switch(&ctx).await;
    let event = sentry_hook_event(&ctx.secret, "metric_alert", &critical(), FLAG_QUERY);
    let response = sentry_to_vwo::handle(
        &app,
        lambda_http::request::from_str(&event.to_string()).unwrap(),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["sentry-hook-error"],
        WOULD,
        "kept in the integration's request log"
    );
    let lambda_http::Body::Text(text) = response.body() else {
        panic!("text body expected")
    };
    let answer: Value = serde_json::from_str(text).unwrap();
    assert_eq!(answer["dryRun"]["message"], WOULD);
    assert!(ctx.vwo.toggles().is_empty());

    // A flag VWO does not know: the dry run fails the way the real toggle would.
    let (status, answer, _) = send(
        &app,
        sentry_hook_event(
            &ctx.secret,
            "metric_alert",
            &dry_run_alert("no-such-flag"),
            "",
        ),
    )
    .await;
    assert_eq!(status, 502, "{answer}");
    assert_says(&answer["error"], "Feature not found");
    assert!(ctx.vwo.toggles().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn saving_a_rule_in_dry_run_says_so() {
    let ctx = setup("dry-run-save", &[]).await;
    let app = kill_switch(&ctx).await;
    let event = testkit::rule_action_event(
        &ctx.secret,
        json!([
            {"name": "feature", "value": "checkout-new-flow"},
            {"name": "environment", "value": "production"},
            {"name": "dryRun", "value": "true"}
        ]),
    );
    let (status, answer, _) = send(&app, event).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["message"],
        "Dry run: when this alert fires, the kill switch will only say that it would turn VWO flag checkout new flow (checkout-new-flow) in production off; nothing is switched."
    );
    assert!(ctx.vwo.toggles().is_empty(), "saving never switches");
}
