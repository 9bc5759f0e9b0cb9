//! The alert rule's drop-downs: Sentry's select requests (`select_requester.py`: `GET <uri>`,
//! `installationId`, `query`, `dependentData`, `Sentry-App-Signature` over the empty body) to
//! the kill switch, with its state table in moto and the VWO stand-in. Every answer is checked
//! against what Sentry's requester accepts, and every list against what VWO was asked.

use std::time::{Duration, Instant};
use testkit::answers::assert_says;

use serde_json::{json, Value};
use testkit::vwo::{FakeRule, ACCOUNT_ID};
use testkit::{options_event, rule_action_event, sentry_hook_event};

use crate::durable::{critical_for, kill_switch, send, setup, Ctx, SYNCHRONOUS};

/// What Sentry's select requester accepts (getsentry/sentry
/// `src/sentry/sentry_apps/external_requests/select_requester.py` `_validate_response` with
/// `utils.py` `SELECT_OPTIONS_SCHEMA`, then `_format_response`): a JSON array of objects, each
/// with a string `label` and a string `value`, `default` optional. Returns `(label, value)`s.
fn sentry_accepts(body: &Value) -> Vec<(String, String)> {
    let options = body
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {body}"));
    options
        .iter()
        .map(|option| {
            let label = option["label"].as_str();
            let value = option["value"].as_str();
            match (label, value) {
                (Some(label), Some(value)) => (label.to_owned(), value.to_owned()),
                _ => panic!("Sentry refuses an option without a string label and value: {option}"),
            }
        })
        .collect()
}

/// Names, keys and ids only: no SDK key and no token.
fn assert_no_secrets(body: &Value) {
    let text = body.to_string();
    assert!(
        !text.contains("sdk-") && !text.contains("vwo-token"),
        "{text}"
    );
}

fn production_data() -> String {
    json!({"environment": "1"}).to_string()
}

async fn drop_downs(name: &str, extra: &[(&str, &str)]) -> Ctx {
    let ctx = setup(name, extra).await;
    ctx.vwo.set_flag_name("checkout-new-flow", "Checkout v2");
    ctx.vwo.set_rules(
        "checkout-new-flow",
        "production",
        vec![FakeRule::rollout("rollout1"), FakeRule::rollout("canary")],
    );
    ctx.vwo.add_flag("search-v2", true);
    ctx.vwo.set_flag_name("search-v2", "Search v2");
    ctx.vwo.add_flag("dark-mode", true);
    ctx.vwo.set_enabled("dark-mode", "production", false);
    ctx
}

fn token_reads(ctx: &Ctx, path_end: &str) -> usize {
    ctx.vwo
        .api_requests()
        .iter()
        .filter(|r| r.raw_path.ends_with(path_end))
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn each_list_answers_what_sentry_shows_and_depends_on_the_chosen_fields() {
    let ctx = drop_downs("options-lists", &[]).await;
    let app = kill_switch(&ctx).await;
    let projects_at_start = token_reads(&ctx, "/projects");
    let secret = Some(ctx.secret.as_str());

    let (status, body, _) = send(&app, options_event(secret, "/options/environments", &[])).await;
    assert_eq!(status, 200, "{body}");
    assert_no_secrets(&body);
    assert_eq!(
        sentry_accepts(&body),
        [
            ("Web app / production".to_owned(), "1".to_owned()),
            ("Web app / staging".to_owned(), "2".to_owned())
        ]
    );

    let data = production_data();
    let (status, body, _) = send(
        &app,
        options_event(secret, "/options/flags", &[("dependentData", &data)]),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_no_secrets(&body);
    // The production settings file leaves out the flag that is off there.
    assert_eq!(
        sentry_accepts(&body),
        [
            // First, the suspect (feature=@suspect), found when the alert fires.
            (
                "The issue's suspect flag (changed shortly before the issue started)".to_owned(),
                "@suspect".to_owned()
            ),
            (
                "Checkout v2 (checkout-new-flow)".to_owned(),
                "checkout-new-flow".to_owned()
            ),
            ("Search v2 (search-v2)".to_owned(), "search-v2".to_owned())
        ]
    );
    let (_, body, _) = send(
        &app,
        options_event(
            secret,
            "/options/flags",
            &[("dependentData", &data), ("query", "check")],
        ),
    )
    .await;
    assert_eq!(sentry_accepts(&body).len(), 1, "{body}");
    // Staging, by name: the flag off in production is there (after the suspect's choice).
    let staging = json!({"environment": "staging"}).to_string();
    let (_, body, _) = send(
        &app,
        options_event(secret, "/options/flags", &[("dependentData", &staging)]),
    )
    .await;
    assert_eq!(sentry_accepts(&body).len(), 1 + 3, "{body}");

    let rules_of = json!({"environment": "1", "feature": "checkout-new-flow"}).to_string();
    let (status, body, _) = send(
        &app,
        options_event(secret, "/options/rules", &[("dependentData", &rules_of)]),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let values: Vec<String> = sentry_accepts(&body).into_iter().map(|(_, v)| v).collect();
    assert_eq!(values, ["rollout1", "canary"]);
    // Nothing chosen yet: an empty list, not an error.
    let (status, body, _) = send(&app, options_event(secret, "/options/rules", &[])).await;
    assert_eq!((status, body), (200, json!([])));

    // One projects read for the workspace (the guard rails' at cold start, shared with the
    // drop-downs), one settings-file read per environment, by SDK key and without the token.
    assert_eq!(projects_at_start, 1);
    assert_eq!(token_reads(&ctx, "/projects"), 1);
    let settings = ctx.vwo.settings_reads();
    assert_eq!(settings.len(), 2);
    assert!(settings.iter().all(|r| r.token.is_none()));
    assert_eq!(
        settings[0].query_param("i").as_deref(),
        Some("sdk-prod-1111")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_environment_is_a_message_sentry_shows() {
    let ctx = drop_downs("options-unknown", &[]).await;
    let app = kill_switch(&ctx).await;
    let data = json!({"environment": "prodution"}).to_string();
    let (status, body, _) = send(
        &app,
        options_event(
            Some(&ctx.secret),
            "/options/flags",
            &[("dependentData", &data)],
        ),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_says(&body["message"], "\"prodution\"");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_or_wrong_signature_is_401_and_reaches_nothing() {
    let ctx = drop_downs("options-unsigned", &[]).await;
    let app = kill_switch(&ctx).await;
    let at_start = ctx.vwo.requests().len();
    for event in [
        options_event(None, "/options/environments", &[]),
        options_event(Some("not-the-secret"), "/options/environments", &[]),
    ] {
        let (status, body, _) = send(&app, event).await;
        assert_eq!(status, 401, "{body}");
        assert!(body["message"].is_string(), "{body}");
    }
    // Signed over a body instead of the empty one: refused too.
    let mut event = options_event(Some(&ctx.secret), "/options/environments", &[]);
    event["headers"]["sentry-app-signature"] = json!(testkit::hmac_hex(&ctx.secret, b"{}"));
    assert_eq!(send(&app, event).await.0, 401);
    assert_eq!(ctx.vwo.requests().len(), at_start, "VWO was asked");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_burst_of_a_hundred_requests_reads_each_list_from_vwo_once() {
    let ctx = drop_downs("options-burst", &[]).await;
    // Four containers, as Lambda scales out for a burst.
    let mut apps = Vec::new();
    for _ in 0..4 {
        apps.push(kill_switch(&ctx).await);
    }
    // Four cold starts, whose guard rails need the environments: one read, shared.
    assert_eq!(token_reads(&ctx, "/projects"), 1);
    let data = production_data();
    let events: Vec<Value> = (0..100)
        .map(|i| {
            if i % 2 == 0 {
                options_event(Some(&ctx.secret), "/options/environments", &[])
            } else {
                options_event(
                    Some(&ctx.secret),
                    "/options/flags",
                    &[("dependentData", &data)],
                )
            }
        })
        .collect();
    let answers = testkit::join_all(
        events
            .into_iter()
            .enumerate()
            .map(|(i, event)| send(&apps[i % apps.len()], event))
            .collect(),
    )
    .await;
    for (status, body, _) in &answers {
        assert_eq!(*status, 200, "{body}");
        assert!(!sentry_accepts(body).is_empty(), "{body}");
    }
    assert_eq!(token_reads(&ctx, "/projects"), 1, "one projects read");
    assert_eq!(
        token_reads(&ctx, "/accounts/current"),
        1,
        "one workspace read"
    );
    assert_eq!(ctx.vwo.settings_reads().len(), 1, "one settings-file read");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_kill_in_a_burst_of_option_requests_is_not_delayed_by_it() {
    let account = ACCOUNT_ID.to_string();
    // The gate's slot, longer than VWO's 1 s so that a slot is worth more than what a busy
    // machine adds to the kill (moto's round trips while the whole suite runs: up to ~2.5 s
    // seen on a slow host): a kill that waited for a second slot cannot pass for one that did not.
    const SLOT_MS: u64 = 3000;
    let slot = SLOT_MS.to_string();
    let ctx = drop_downs(
        "options-kill",
        &[
            // VWO's limit, enforced by the stand-in, with the margin above.
            ("VWO_MIN_INTERVAL_MS", &slot),
            ("VWO_ACCOUNT_ID", &account),
            ("FAST_PATH_MS", SYNCHRONOUS),
        ],
    )
    .await;
    ctx.vwo.enforce_rate_limit(Duration::from_secs(1));
    let options_app = kill_switch(&ctx).await;
    let kill_app = kill_switch(&ctx).await;
    let projects_at_start = token_reads(&ctx, "/projects");
    let data = production_data();
    let burst = testkit::join_all(
        (0..40)
            .map(|_| {
                send(
                    &options_app,
                    options_event(
                        Some(&ctx.secret),
                        "/options/flags",
                        &[("dependentData", &data)],
                    ),
                )
            })
            .collect(),
    );
    let kill = async {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let started = Instant::now();
        let answer = send(
            &kill_app,
            sentry_hook_event(&ctx.secret, "metric_alert", &critical_for("search-v2"), ""),
        )
        .await;
        (answer, started.elapsed())
    };
    let (answers, ((status, body, _), took)) = tokio::join!(burst, kill);
    assert_eq!(status, 200, "{body} {:?}", ctx.vwo.rate_violations());
    assert_eq!(body["toggled"]["feature"], "search-v2", "{body}");
    // At most the one slot the burst's single projects read may have taken first: less than
    // two slots.
    assert!(
        took < Duration::from_millis(2 * SLOT_MS - 200),
        "the kill took {took:?}"
    );
    ctx.vwo.assert_off("search-v2", "production");
    assert!(ctx.vwo.rate_violations().is_empty());
    assert!(token_reads(&ctx, "/projects") - projects_at_start <= 1);
    // The burst is answered (from the list, or told to open the drop-down again).
    for (status, body, _) in answers {
        assert!(matches!(status, 200 | 503), "{status} {body}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn saving_a_rule_names_the_flag_from_the_lists_and_refuses_what_vwo_lacks() {
    let ctx = drop_downs("options-save", &[]).await;
    let app = kill_switch(&ctx).await;
    let fields = |feature: &str, environment: &str| json!([{"name": "feature", "value": feature}, {"name": "environment", "value": environment}]);
    let (status, body, _) = send(
        &app,
        rule_action_event(&ctx.secret, fields("checkout-new-flow", "1")),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["message"],
        "When this alert fires, VWO flag Checkout v2 (checkout-new-flow) in production will be turned off."
    );
    // Named from the lists: no token read for the flag itself.
    assert_eq!(token_reads(&ctx, "/rules"), 0);

    let mut rule = fields("checkout-new-flow", "production");
    rule.as_array_mut()
        .unwrap()
        .push(json!({"name": "rule", "value": "canary"}));
    let (status, body, _) = send(&app, rule_action_event(&ctx.secret, rule)).await;
    assert_eq!(status, 200, "{body}");
    assert_says(
        &body["message"],
        "VWO flag Checkout v2 (checkout-new-flow)'s rule",
    );

    let (status, body, _) = send(
        &app,
        rule_action_event(&ctx.secret, fields("checkout-nwe-flow", "production")),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_says(&body["message"], "checkout-nwe-flow");

    let (status, body, _) = send(
        &app,
        rule_action_event(&ctx.secret, fields("checkout-new-flow", "prodution")),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_says(&body["message"], "\"prodution\"");

    // A flag off in the environment is not in its settings file: VWO's API is asked, and a
    // rule that turns it back on can still be saved.
    let (status, body, _) = send(
        &app,
        rule_action_event(&ctx.secret, fields("dark-mode", "production")),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

/// VWO leaves a flag that is off out of the environment's settings file, and Sentry's select
/// takes only offered values: a flag switched off (by a person, or by a kill) stays on the list,
/// marked off, so a rule can still be set up for it (the next read of the file, a minute on).
#[tokio::test(flavor = "multi_thread")]
async fn a_flag_switched_off_stays_on_the_list_marked_off() {
    let ctx = drop_downs("options-off", &[]).await;
    let app = kill_switch(&ctx).await;
    let secret = Some(ctx.secret.as_str());
    let data = production_data();
    let event = || options_event(secret, "/options/flags", &[("dependentData", &data)]);
    let flags = |app, event| async move {
        let (_, body, _) = send(app, event).await;
        sentry_accepts(&body)
    };
    assert!(flags(&app, event())
        .await
        .iter()
        .any(|(_, v)| v == "search-v2"));
    ctx.vwo.set_enabled("search-v2", "production", false);
    // The list is a minute old: read the file again now.
    crate::moto()
        .call(
            "DynamoDB_20120810.UpdateItem",
            json!({
                "TableName": ctx.vars["STATE_TABLE"],
                "Key": {"environment": {"S": format!("options#current#flags#1")}},
                "UpdateExpression": "SET fetched_ms = :old, attempted_ms = :old",
                "ExpressionAttributeValues": {":old": {"N": "0"}},
            }),
        )
        .await;
    let listed = flags(&app, event()).await;
    assert!(
        listed.contains(&(
            "Search v2 (search-v2) — off in production".to_owned(),
            "search-v2".to_owned()
        )),
        "{listed:?}"
    );
}
