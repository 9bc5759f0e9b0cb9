//! Guard rails: `KILLABLE_FLAGS` (which flags may be switched, however the alert names them) and
//! `ENABLE_ALLOWED_IN` (where a flag may be turned on). A refused alert is answered 200
//! `ignored` with the reason in `Sentry-Hook-Error` and never reaches VWO's toggle; a refused
//! rule is refused when it is saved, with a message naming the flag and the list.

use serde_json::{json, Value};
use testkit::answers::{assert_opens, assert_says};
use testkit::{rule_action_event, sample};

use crate::durable::SYNCHRONOUS;
use crate::handler::{fire_event_alert, send, setup, setup_renamed, Ctx};

/// An issue alert whose rule's action names `settings`.
fn alert(settings: Value) -> Vec<u8> {
    let mut body: Value =
        serde_json::from_slice(&sample("sentry/event_alert.triggered.json")).unwrap();
    body["data"]["issue_alert"]["settings"] = settings;
    serde_json::to_vec(&body).unwrap()
}

fn flag_in(feature: &str, environment: &str, enabled: &str) -> Value {
    json!([{"name": "feature", "value": feature}, {"name": "environment", "value": environment},
        {"name": "isEnabled", "value": enabled}])
}

async fn fire(ctx: &Ctx, settings: Value) -> (u16, Value, String) {
    fire_event_alert(ctx, &alert(settings)).await
}

#[tokio::test(flavor = "multi_thread")]
async fn only_flags_in_killable_flags_are_switched_however_the_alert_names_them() {
    let vars = [("KILLABLE_FLAGS", "production:checkout-*, staging:*")];
    let ctx = setup("killable", &vars).await;
    let (status, body, hook_error) = fire(&ctx, flag_in("search-v2", "production", "0")).await;
    assert_eq!(status, 200, "{body}");
    let reason = "flag search-v2 in production is not in KILLABLE_FLAGS (production:checkout-*, staging:*); not switched";
    assert_eq!(body["ignored"], reason);
    assert_eq!(hook_error, format!("ignored: {reason}"));
    assert!(ctx.vwo.toggles().is_empty());

    // Named by id and by the environment's SDK key: resolved to VWO's names, then allowed.
    let id = ctx.vwo.add_flag("checkout-legacy", true);
    let (status, body, _) = fire(&ctx, flag_in(&id.to_string(), "sdk-prod-1111", "0")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["toggled"]["feature"], id.to_string());
    ctx.vwo.assert_off("checkout-legacy", "production");
    // search-v2 by id is still search-v2.
    let search = ctx
        .vwo
        .api_requests()
        .iter()
        .any(|r| r.raw_path.ends_with(&format!("/features/{id}")));
    assert!(search, "the id was looked up");

    // An environment VWO does not have cannot be checked: refused, never switched.
    let (status, body, _) = fire(&ctx, flag_in("checkout-new-flow", "prod-eu", "0")).await;
    assert_eq!(status, 200);
    assert_says(
        &body["ignored"],
        "cannot be checked against the guard rails",
    );
    assert_eq!(ctx.vwo.toggles().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn turning_a_flag_on_needs_its_environment_in_enable_allowed_in() {
    let ctx = setup("enable-allowed", &[("ENABLE_ALLOWED_IN", "staging")]).await;
    let (status, body, hook_error) = fire(&ctx, flag_in("search-v2", "production", "1")).await;
    assert_eq!(status, 200, "{body}");
    assert_opens(
        &body["ignored"],
        "turning flag search-v2 on in production is not allowed: ENABLE_ALLOWED_IN lists staging",
    );
    assert!(
        hook_error.contains("a person must turn it on"),
        "{hook_error}"
    );
    assert!(ctx.vwo.toggles().is_empty());

    ctx.vwo.set_enabled("search-v2", "staging", false);
    let (status, body, _) = fire(&ctx, flag_in("search-v2", "staging", "1")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["toggled"]["isEnabled"], true);
    ctx.vwo.assert_on("search-v2", "staging");
    // Turning off needs no listing.
    let (_, body, _) = fire(&ctx, flag_in("search-v2", "production", "0")).await;
    assert_eq!(body["toggled"]["isEnabled"], false, "{body}");
}

/// VWO's UI names environments "Production" and "Staging"; the README's examples and the URLs
/// users write say `production`. Each guard rail matches the environment by whatever a user
/// writes for it (id, key, name, any case) — the defect was every kill refused.
#[tokio::test(flavor = "multi_thread")]
async fn guard_rails_match_environments_as_vwo_names_them_however_the_user_writes_them() {
    let ctx = setup_renamed(
        "vwo-names",
        &[
            ("KILLABLE_FLAGS", "production:checkout-*,STAGING:*"),
            ("ENABLE_ALLOWED_IN", "staging"),
        ],
        &[("production", "Production"), ("staging", "Staging")],
    )
    .await;
    for written in ["production", "Production", "1"] {
        ctx.vwo.set_enabled("checkout-new-flow", "Production", true);
        let (status, body, _) = fire(&ctx, flag_in("checkout-new-flow", written, "0")).await;
        assert_eq!(status, 200, "{written}: {body}");
        assert_eq!(body["toggled"]["isEnabled"], false, "{written}: {body}");
        ctx.vwo.assert_off("checkout-new-flow", "Production");
    }
    // Still refused: a flag the list does not name, and turning one on in production.
    let (_, body, _) = fire(&ctx, flag_in("search-v2", "production", "0")).await;
    assert_eq!(
        body["ignored"],
        "flag search-v2 in Production is not in KILLABLE_FLAGS (production:checkout-*,STAGING:*); not switched"
    );
    let (_, body, _) = fire(&ctx, flag_in("checkout-new-flow", "production", "1")).await;
    assert_opens(
        &body["ignored"],
        "turning flag checkout-new-flow on in Production is not allowed",
    );
    // Turned on where ENABLE_ALLOWED_IN lists it, written in VWO's case.
    ctx.vwo.set_enabled("search-v2", "Staging", false);
    let (_, body, _) = fire(&ctx, flag_in("search-v2", "Staging", "1")).await;
    assert_eq!(body["toggled"]["isEnabled"], true, "{body}");
    ctx.vwo.assert_on("search-v2", "Staging");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rule_naming_a_flag_outside_the_list_is_refused_when_saved() {
    let vars = [("KILLABLE_FLAGS", "production:checkout-*")];
    let ctx = setup("killable-save", &vars).await;
    let save = |fields: Value| rule_action_event(&ctx.secret, fields);
    let (status, body, _) = send(&ctx, save(flag_in("search-v2", "production", "0"))).await;
    assert_eq!(status, 400, "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("search-v2"), "{message}");
    assert!(
        message.contains("KILLABLE_FLAGS (production:checkout-*)"),
        "{message}"
    );
    let (status, body, _) = send(&ctx, save(flag_in("checkout-new-flow", "production", "0"))).await;
    assert_eq!(status, 200, "{body}");
    assert!(ctx.vwo.toggles().is_empty(), "saving never switches");
}

/// The sample `resource.action` alert of the critical rule, with an incident id of its own (each
/// real firing is a new delivery with its own signature).
fn firing(file: &str, incident: usize) -> Vec<u8> {
    let mut body: Value = serde_json::from_slice(&sample(&format!("sentry/{file}"))).unwrap();
    body["data"]["metric_alert"]["id"] = json!(format!("flap-{incident}"));
    serde_json::to_vec(&body).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flapping_alert_restores_the_flag_at_most_three_times_a_day() {
    let ctx = crate::durable::setup("flapping", &[("FAST_PATH_MS", SYNCHRONOUS)]).await;
    let app = crate::durable::kill_switch(&ctx).await;
    let query = crate::durable::FLAG_QUERY;
    let fire = |file: &'static str, incident: usize| {
        testkit::sentry_hook_event(&ctx.secret, "metric_alert", &firing(file, incident), query)
    };
    for round in 0..3 {
        let (_, body, _) =
            crate::durable::send(&app, fire("metric_alert.critical.json", round)).await;
        assert_eq!(body["toggled"]["isEnabled"], false, "round {round}: {body}");
        let (_, body, _) =
            crate::durable::send(&app, fire("metric_alert.resolved.json", round)).await;
        assert_eq!(body["toggled"]["isEnabled"], true, "round {round}: {body}");
        assert_eq!(body["toggled"]["restore"], true);
    }
    let (_, body, _) = crate::durable::send(&app, fire("metric_alert.critical.json", 3)).await;
    assert_eq!(body["toggled"]["isEnabled"], false, "{body}");
    // The fourth restore in a day is not done: the flag stays off, and the answer says why.
    let (status, body, _) = crate::durable::send(&app, fire("metric_alert.resolved.json", 3)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["ignored"],
        "restored 3 times in the last 24 hours (MAX_RESTORES_PER_DAY=3): the flag stays off; a person must turn it on"
    );
    ctx.vwo.assert_off("checkout-new-flow", "production");
    assert_eq!(ctx.vwo.toggles().len(), 7);
    // Kills still work.
    let (_, body, _) = crate::durable::send(&app, fire("metric_alert.critical.json", 4)).await;
    assert!(body["toggled"].is_object(), "{body}");
}
