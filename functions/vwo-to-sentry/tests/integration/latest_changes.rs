//! What change tracking keeps for the kill switch's suspect: each flag's latest change that
//! Sentry accepted, by VWO's environment id, with when, what and who.

use bridge_platform::clock::unix_secs;
use bridge_state::latest_change::{ChangeKind, LatestChanges};
use serde_json::json;
use testkit::sentry::Script as SentryScript;
use testkit::vwo::FakeRule;

use crate::handler::{baselined, deliver, flag_updated, instance, setup, webhook, TS};

async fn latest(
    ctx: &crate::handler::Ctx,
    flags: &[&str],
) -> Vec<(String, i64, ChangeKind, String)> {
    let aws = bridge_platform::aws::aws_config().await;
    let table = ctx.vars["STATE_TABLE"].clone();
    let found = LatestChanges::new(aws_sdk_dynamodb::Client::new(&aws), table)
        .get("1", flags, unix_secs())
        .await
        .unwrap();
    let mut found: Vec<_> = found
        .into_values()
        .map(|c| (c.flag, c.at, c.kind, c.by))
        .collect();
    found.sort();
    found
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reported_change_is_kept_with_when_what_and_who_by_the_environment_id() {
    let (ctx, app) = baselined("latest").await;
    assert_eq!(latest(&ctx, &["search-v2", "checkout-new-flow"]).await, []);

    // A person switches search-v2 on; the webhook URL names the environment by name.
    ctx.vwo.set_feeds(vec![json!({"id": 1, "type": "feature", "what": "Feature flag <b>search-v2</b> enabled", "when": TS.to_string(), "who": {"name": "Ada Admin"}})]);
    ctx.vwo.set_enabled("search-v2", "production", true);
    let (status, body, _) = flag_updated(&ctx, &app, TS).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        latest(&ctx, &["search-v2", "checkout-new-flow"]).await,
        [(
            "search-v2".into(),
            TS,
            ChangeKind::SwitchedOn,
            "Ada Admin".into()
        )]
    );

    // Switched off later: the latest change is that one (no suspect), by VWO when no one is named.
    ctx.vwo.set_feeds(vec![]);
    ctx.vwo.set_enabled("search-v2", "production", false);
    flag_updated(&ctx, &app, TS + 30).await;
    assert_eq!(
        latest(&ctx, &["search-v2"]).await,
        [(
            "search-v2".into(),
            TS + 30,
            ChangeKind::SwitchedOff,
            "vwo".into()
        )]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_change_sentry_did_not_accept_is_not_kept() {
    let (ctx, app) = baselined("latest-refused").await;
    ctx.sentry.script([SentryScript::Status(500)]);
    ctx.vwo.set_enabled("search-v2", "production", true);
    let (status, _, _) = flag_updated(&ctx, &app, TS).await;
    assert_eq!(status, 502);
    assert_eq!(latest(&ctx, &["search-v2"]).await, []);
    // VWO's retry: Sentry takes it, and the change is kept.
    let (status, body, _) = flag_updated(&ctx, &app, TS).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(latest(&ctx, &["search-v2"]).await.len(), 1);
}

/// `?flagPrefix=staging:`: Sentry's flag log names the flag `staging:search-v2` (one organisation,
/// several VWO environments); the change is kept under the flag's own key for the kill switch.
#[tokio::test(flavor = "multi_thread")]
async fn a_flag_prefix_names_the_flag_in_sentry_and_not_in_the_kept_change() {
    let ctx = setup("latest-prefix", &[]).await;
    let app = instance(&ctx).await;
    let prefixed = |timestamp| {
        let mut event = webhook(&ctx.auth, "feature_flag_updated", timestamp);
        event["rawQueryString"] = json!("environment=production&flagPrefix=prod%3A");
        event["queryStringParameters"] =
            json!({"environment": "production", "flagPrefix": "prod:"});
        event
    };
    deliver(&app, &prefixed(TS - 60)).await;
    ctx.vwo.set_enabled("search-v2", "production", true);
    let (status, body, _) = deliver(&app, &prefixed(TS)).await;
    assert_eq!(status, 200, "{body}");
    let changes = ctx.sentry.accepted_changes();
    assert_eq!(changes.last().unwrap()["flag"], "prod:search-v2");
    assert_eq!(
        latest(&ctx, &["search-v2"]).await,
        [("search-v2".into(), TS, ChangeKind::SwitchedOn, "vwo".into())]
    );
    // A prefix that is not a name is refused with a 400 that says what is allowed.
    let mut bad = webhook(&ctx.auth, "feature_flag_updated", TS + 1);
    bad["queryStringParameters"] = json!({"environment": "production", "flagPrefix": "a/b"});
    bad["rawQueryString"] = json!("environment=production&flagPrefix=a%2Fb");
    let (status, body, _) = deliver(&app, &bad).await;
    assert_eq!(status, 400, "{body}");
}

/// The rule a flag's latest change in production touched, as kept for the kill switch.
async fn rule_of_latest(ctx: &crate::handler::Ctx, flag: &str) -> (ChangeKind, Option<String>) {
    let aws = bridge_platform::aws::aws_config().await;
    let table = ctx.vars["STATE_TABLE"].clone();
    let found = LatestChanges::new(aws_sdk_dynamodb::Client::new(&aws), table)
        .get("1", &[flag], unix_secs())
        .await
        .unwrap();
    let change = &found[flag];
    (change.kind, change.rule.clone())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_change_of_one_rule_is_kept_with_that_rules_key() {
    let ctx = setup("latest-rule", &[]).await;
    let app = instance(&ctx).await;
    let flag = "checkout-new-flow";
    flag_updated(&ctx, &app, TS - 60).await;
    let mut at = TS;
    let mut changed = |rules: Vec<FakeRule>| {
        ctx.vwo.set_rules(flag, "production", rules);
        at += 10;
        webhook(&ctx.auth, "feature_flag_updated", at)
    };
    let rollout = FakeRule::rollout("rolloutRule1");
    let eu = FakeRule::testing("eu-50", 50, ["Control", "Variation"]);

    // A rule added to a flag that stays on: that rule.
    let added = changed(vec![rollout.clone(), eu.clone()]);
    let (status, body, _) = deliver(&app, &added).await;
    assert_eq!(status, 200, "{body}");
    let kept = (ChangeKind::Changed, Some("eu-50".to_owned()));
    assert_eq!(rule_of_latest(&ctx, flag).await, kept);

    // Its traffic changed: that rule again.
    let less = FakeRule {
        traffic: 20,
        ..eu.clone()
    };
    deliver(&app, &changed(vec![rollout.clone(), less.clone()])).await;
    assert_eq!(rule_of_latest(&ctx, flag).await, kept);

    // Two rules changed at once, or one removed: the flag's change, no single rule.
    let wider = FakeRule {
        traffic: 50,
        ..rollout.clone()
    };
    let both = changed(vec![
        wider.clone(),
        FakeRule {
            traffic: 30,
            ..less
        },
    ]);
    deliver(&app, &both).await;
    assert_eq!(
        rule_of_latest(&ctx, flag).await,
        (ChangeKind::Changed, None)
    );
    deliver(&app, &changed(vec![wider])).await;
    assert_eq!(
        rule_of_latest(&ctx, flag).await,
        (ChangeKind::Changed, None)
    );
}
