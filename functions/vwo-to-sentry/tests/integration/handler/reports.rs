//! What change tracking reports to Sentry, at any size: each kind of change, once, in its environment, named by who made it; one settings read per delivery, and a flag list read across deliveries.

use super::*;

#[tokio::test(flavor = "multi_thread")]
async fn a_baseline_then_one_toggle_sends_exactly_one_update() {
    let ctx = setup("toggle", &[]).await;
    let app = instance(&ctx).await;
    let (status, body, _) = flag_updated(&ctx, &app, TS - 60).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"baseline": {"flags": 2}}));
    assert_eq!(ctx.sentry.deliveries(), 0, "the baseline sends nothing");

    ctx.vwo
        .set_enabled("checkout-new-flow", "production", false);
    let (status, body, _) = flag_updated(&ctx, &app, TS).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["sent"][0]["flag"], "checkout-new-flow");
    assert_sentry_has(&ctx, &[change("updated", "checkout-new-flow", TS)]);
    assert!(ctx.sentry.rejections().is_empty());

    // A change in another environment is not a change here.
    ctx.vwo.set_enabled("search-v2", "staging", true);
    let (status, body, _) = flag_updated(&ctx, &app, TS + 5).await;
    assert_eq!((status, body), (200, json!({"unchanged": true})));
    assert_eq!(ctx.sentry.deliveries(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn created_deleted_and_rule_changes_are_reported() {
    for mode in [OffFlags::Omitted, OffFlags::StatusOff] {
        let ctx = setup(&format!("lifecycle-{mode:?}"), &[]).await;
        ctx.vwo.off_flags(mode);
        ctx.vwo.add_flag("old-banner", true);
        ctx.vwo.add_flag("rollout-copy", true);
        let app = instance(&ctx).await;
        let (_, body, _) = flag_updated(&ctx, &app, TS - 60).await;
        assert_eq!(body, json!({"baseline": {"flags": 4}}), "{mode:?}");
        ctx.vwo.add_flag("pricing-banner", true);
        ctx.vwo.remove_flag("old-banner");
        let mut rules = ctx.vwo.rules("rollout-copy", "production");
        rules[0].traffic = 10;
        ctx.vwo.set_rules("rollout-copy", "production", rules);
        let (status, body, _) = flag_updated(&ctx, &app, TS).await;
        assert_eq!(status, 200, "{mode:?}: {body}");
        let got = sorted_changes(&ctx);
        assert_eq!(
            got,
            vec![
                change("deleted", "old-banner", TS),
                change("created", "pricing-banner", TS),
                change("updated", "rollout-copy", TS),
            ],
            "{mode:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn switched_off_is_an_update_and_deleted_is_told_apart_by_the_rest_api() {
    for mode in [OffFlags::Omitted, OffFlags::StatusOff] {
        let ctx = setup(&format!("off-vs-deleted-{mode:?}"), &[]).await;
        ctx.vwo.off_flags(mode);
        ctx.vwo.add_flag("doomed", true);
        let app = instance(&ctx).await;
        flag_updated(&ctx, &app, TS - 60).await;
        ctx.vwo
            .set_enabled("checkout-new-flow", "production", false);
        ctx.vwo.remove_flag("doomed");
        let before = ctx.vwo.api_requests().len();
        let (status, body, _) = flag_updated(&ctx, &app, TS).await;
        assert_eq!(status, 200, "{body}");
        let got = sorted_changes(&ctx);
        assert_eq!(
            got,
            vec![
                change("updated", "checkout-new-flow", TS),
                change("deleted", "doomed", TS)
            ],
            "{mode:?}"
        );
        let lookups: Vec<String> = ctx.vwo.api_paths()[before..]
            .iter()
            .filter(|p| p.contains("/features/"))
            .cloned()
            .collect();
        let expected = if mode == OffFlags::Omitted { 2 } else { 1 };
        assert_eq!(
            lookups.len(),
            expected,
            "{mode:?}: one lookup per flag that left the file: {lookups:?}"
        );
        // Switched on again: one more update, no lookup.
        ctx.vwo.set_enabled("checkout-new-flow", "production", true);
        let (status, _, _) = flag_updated(&ctx, &app, TS + 60).await;
        assert_eq!(status, 200);
        let changes = ctx.sentry.accepted_changes();
        assert_eq!(changes.len(), 3, "{mode:?}");
        assert_eq!(
            (&changes[2]["action"], &changes[2]["flag"]),
            (&json!("updated"), &json!("checkout-new-flow"))
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn each_environment_sees_only_its_own_changes() {
    let ctx = setup("per-env", &[]).await;
    let app = instance(&ctx).await;
    for env in ["production", "staging"] {
        let (_, body, _) = deliver(&app, &webhook_for(env, &ctx.auth, TS - 60)).await;
        assert_eq!(body, json!({"baseline": {"flags": 2}}), "{env}");
    }
    // A rule added in staging changes nothing in production.
    let mut rules = ctx.vwo.rules("checkout-new-flow", "staging");
    rules.push(FakeRule::testing(
        "testingRule1",
        50,
        ["Default", "Variation-1"],
    ));
    ctx.vwo.set_rules("checkout-new-flow", "staging", rules);
    ctx.vwo.set_enabled("search-v2", "staging", true);
    let (status, body, _) = deliver(&app, &webhook_for("production", &ctx.auth, TS)).await;
    assert_eq!((status, body), (200, json!({"unchanged": true})));
    assert_eq!(ctx.sentry.deliveries(), 0);
    let (status, body, _) = deliver(&app, &webhook_for("staging", &ctx.auth, TS)).await;
    assert_eq!(status, 200, "{body}");
    let got = sorted_changes(&ctx);
    assert_eq!(
        got,
        vec![
            change_in("staging", "updated", "checkout-new-flow", TS),
            change_in("staging", "updated", "search-v2", TS),
        ]
    );
    // Each environment's settings file was read with its own SDK key, the key found once.
    let keys: Vec<Option<String>> = ctx
        .vwo
        .settings_reads()
        .iter()
        .map(|r| r.query_param("i"))
        .collect();
    assert_eq!(
        keys,
        [
            "sdk-prod-1111",
            "sdk-stage-2222",
            "sdk-prod-1111",
            "sdk-stage-2222"
        ]
        .map(|k| Some(k.to_owned()))
        .to_vec()
    );
    let projects = ctx
        .vwo
        .api_requests()
        .iter()
        .filter(|r| r.raw_path.ends_with("/projects"))
        .count();
    assert_eq!(
        projects, 2,
        "one SDK-key lookup per environment, kept with its snapshot"
    );
    for read in ctx.vwo.settings_reads() {
        assert_eq!(read.raw_path, "/server-side/v2-pull");
        assert_eq!(
            read.query_param("a"),
            Some(testkit::vwo::ACCOUNT_ID.to_string())
        );
        assert_eq!(read.token, None, "the settings file needs no API token");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn campaign_actions_are_handled_like_flag_actions() {
    let ctx = setup("campaign", &[]).await;
    let app = instance(&ctx).await;
    deliver(
        &app,
        &webhook(&ctx.auth, "campaign_settings_changed", TS - 60),
    )
    .await;
    let mut rules = ctx.vwo.rules("checkout-new-flow", "production");
    rules[0].variations[0].2 = 40;
    ctx.vwo.set_rules("checkout-new-flow", "production", rules);
    let (status, body, _) =
        deliver(&app, &webhook(&ctx.auth, "campaign_settings_changed", TS)).await;
    assert_eq!(status, 200, "{body}");
    assert_sentry_has(&ctx, &[change("updated", "checkout-new-flow", TS)]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_configured_sdk_key_and_numeric_account_need_no_lookup() {
    let ctx = setup("override", &[("VWO_ACCOUNT_ID", "654321")]).await;
    let app = instance(&ctx).await;
    let mut event = webhook(&ctx.auth, "feature_flag_updated", TS - 60);
    event["rawQueryString"] = json!("environment=production&sdkKey=sdk-prod-1111");
    event["queryStringParameters"] =
        json!({"environment": "production", "sdkKey": "sdk-prod-1111"});
    let (status, _, _) = deliver(&app, &event).await;
    assert_eq!(status, 200);
    // Only the baseline's flag list: no lookup of the SDK key or the account.
    for path in ctx.vwo.api_paths() {
        assert!(
            path.starts_with("/api/v2/accounts/654321/features"),
            "{path}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn flag_keys_longer_than_100_characters_are_skipped_not_truncated() {
    let (ctx, app) = baselined("long-key").await;
    let long = "k".repeat(101);
    ctx.vwo.add_flag(&long, true);
    ctx.vwo.set_enabled("search-v2", "production", true);
    let (status, body, _) = flag_updated(&ctx, &app, TS).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["skipped"], json!([long]));
    assert_sentry_has(&ctx, &[change("updated", "search-v2", TS)]);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_timeline_names_who_made_the_change() {
    let (ctx, app) = baselined("actor").await;
    ctx.vwo.set_feeds(vec![json!({"id": 1, "type": "feature", "what": "Feature flag <b>checkout-new-flow</b> disabled", "when": TS.to_string(), "who": {"name": "Ada Admin"}})]);
    ctx.vwo
        .set_enabled("checkout-new-flow", "production", false);
    flag_updated(&ctx, &app, TS).await;
    let changes = ctx.sentry.accepted_changes();
    assert_eq!(
        changes[0]["created_by"],
        json!({"id": "Ada Admin", "type": "name"})
    );
    let feeds = ctx
        .vwo
        .requests()
        .into_iter()
        .find(|r| r.raw_path.ends_with("/feeds"))
        .unwrap();
    assert_eq!(
        feeds.query.unwrap(),
        format!(
            "limit=100&offset=0&startTime={}&endTime={}",
            TS - 300,
            TS + 60
        )
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_thousand_flags_cost_one_settings_read_per_delivery() {
    let ctx = setup("thousand", &[("LISTING_PAGES_PER_DELIVERY", "50")]).await;
    ctx.vwo.add_many_flags(1000);
    let app = instance(&ctx).await;
    let (_, body, _) = flag_updated(&ctx, &app, TS - 60).await;
    assert_eq!(body, json!({"baseline": {"flags": 1002}}));
    let api_before = ctx.vwo.api_requests().len();
    let settings_before = ctx.vwo.settings_reads().len();
    ctx.vwo.set_enabled("flag-0500", "production", false);
    let (status, body, _) = flag_updated(&ctx, &app, TS).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(ctx.vwo.settings_reads().len() - settings_before, 1);
    let api = &ctx.vwo.api_paths()[api_before..];
    // One lookup for the flag that left the file, one timeline read for the actor.
    assert_eq!(api.len(), 2, "{api:?}");
    assert_sentry_has(&ctx, &[change("updated", "flag-0500", TS)]);
}

/// Delivers `event` as VWO does, again while the answer is 503 with the flag list incomplete;
/// returns the last answer and how many deliveries it took.
async fn deliver_until_listed(app: &App, event: &Value) -> (u16, Value, usize) {
    for n in 1..=100 {
        let (status, body, _) = deliver(app, event).await;
        if status != 503 || body["listing"]["complete"] != json!(false) {
            return (status, body, n);
        }
    }
    panic!("the flag list never completed");
}

#[tokio::test(flavor = "multi_thread")]
async fn ten_thousand_flags_baseline_across_deliveries_then_one_toggle_is_one_update() {
    // 10,000 flags: 400 pages of the flag list, 40 a delivery here (20 by default, about 20 s
    // of the token each); the settings file is ~10 MB.
    let ctx = setup("ten-thousand", &[("LISTING_PAGES_PER_DELIVERY", "40")]).await;
    ctx.vwo.add_many_flags(9_998);
    // Off in production: known only from the flag list.
    ctx.vwo.set_enabled("flag-5000", "production", false);
    let app = instance(&ctx).await;
    let event = webhook(&ctx.auth, "feature_flag_updated", TS - 60);
    let (status, body, _) = deliver(&app, &event).await;
    assert_eq!(status, 503, "{body}");
    // 9,998 flags on in the file, and search-v2 (off), listed on the first pages.
    assert_eq!(body["baseline"]["flags"], 9_999, "{body}");
    assert_eq!(body["listing"]["listed"], 1_000, "{body}");
    assert_eq!(ctx.sentry.deliveries(), 0, "the baseline sends nothing");
    let (status, body, deliveries) = deliver_until_listed(&app, &event).await;
    assert_eq!((status, &body), (200, &json!({"unchanged": true})));
    // 400 pages and the empty one, 40 a delivery: 10 more deliveries.
    assert_eq!(deliveries, 10, "{body}");
    let pages: Vec<String> = ctx
        .vwo
        .api_requests()
        .iter()
        .filter(|r| r.method == "GET" && r.raw_path.ends_with("/features"))
        .filter_map(|r| r.query_param("offset"))
        .collect();
    assert_eq!(pages.len(), 401, "each page read once");
    assert_eq!(
        pages.iter().collect::<std::collections::HashSet<_>>().len(),
        401
    );
    // Read back by someone else (the kill switch's flag drop-down): every flag, chunks joined,
    // the one off in production marked so.
    let aws = bridge_platform::aws::aws_config().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&aws);
    let table = &ctx.vars["STATE_TABLE"];
    let stored = bridge_vwo::settings_file::stored::read(&dynamodb, table, "production")
        .await
        .unwrap()
        .expect("the snapshot reads");
    assert_eq!(stored.flags.len(), 10_000);
    let mut off: Vec<&str> = stored
        .flags
        .values()
        .filter(|f| f.status.is_none())
        .map(|f| f.key.as_str())
        .collect();
    off.sort_unstable();
    assert_eq!(off, ["flag-5000", "search-v2"]);

    // The flag that was off is switched on; another is switched off: two updates, no create.
    ctx.vwo.set_enabled("flag-5000", "production", true);
    ctx.vwo.set_enabled("flag-0042", "production", false);
    let (status, body, _) = flag_updated(&ctx, &app, TS).await;
    assert_eq!(status, 200, "{body}");
    let mut changes = ctx.sentry.accepted_changes();
    changes.sort_by_key(|c| c["flag"].as_str().map(str::to_owned));
    assert_eq!(
        changes,
        vec![
            change("updated", "flag-0042", TS),
            change("updated", "flag-5000", TS)
        ]
    );
    // The snapshot committed: the same webhook again finds nothing new.
    let (status, body, _) = flag_updated(&ctx, &app, TS).await;
    assert_eq!((status, body), (200, json!({"unchanged": true})));
    assert_eq!(ctx.sentry.deliveries(), 1);
}
