//! Change tracking's handler, called directly, with moto's SSM and DynamoDB, a VWO stand-in that
//! serves the REST API and per-environment SDK settings files as VWO publishes them (see
//! `tests/fixtures/README.md`), whose flags the tests edit between deliveries, and a Sentry
//! stand-in that verifies `X-Sentry-Signature` and validates every body against Sentry's schema.

use std::collections::HashMap;
use std::time::Duration;
use testkit::answers::{assert_opens, assert_says};

use lambda_http::{Body, Response};
use serde_json::{json, Value};

use crate::moto;
use bridge_sentry::change_tracking::{change_id, FlagAction};
use bridge_vwo::settings_file::snapshot::{self, Snapshot};
use testkit::function_url_event;
use testkit::sentry::{FakeSentry, Script as SentryScript};
use testkit::vwo::{FakeRule, FakeVwo, OffFlags, Script as VwoScript};
use vwo_to_sentry::config::Config;
use vwo_to_sentry::state::{Acquired, StateStore};
use vwo_to_sentry::{handle, App};

pub(crate) const TS: i64 = 1_795_416_000;

pub(crate) struct Ctx {
    pub(crate) vars: HashMap<String, String>,
    pub(crate) vwo: FakeVwo,
    pub(crate) sentry: FakeSentry,
    pub(crate) auth: String,
    prefix: String,
}

pub(crate) async fn setup(name: &str, extra: &[(&str, &str)]) -> Ctx {
    let moto = moto();
    let prefix = format!("/test/ct/{name}");
    let auth = format!("vwo-webhook-secret-{name}");
    let (signing, token) = (format!("signing-{name}"), format!("token-{name}"));
    let secrets = [
        ("vwo-webhook-secret", &*auth),
        ("sentry-signing-secret", &*signing),
        ("vwo-api-token", &*token),
    ];
    let mut vars = moto.put_secrets(&prefix, &secrets).await;
    testkit::leaks::watch(&[
        &auth,
        &format!("signing-{name}"),
        &format!("token-{name}"),
        "brand-new-secret",
        "rotated-signing",
    ]);
    let table = format!("state-{name}");
    moto.create_table(&table).await;
    let vwo = FakeVwo::start(&format!("token-{name}")).await;
    vwo.add_flag("checkout-new-flow", true);
    vwo.add_flag("search-v2", false);
    let sentry = FakeSentry::start(&format!("signing-{name}")).await;
    vars.extend([
        ("SENTRY_WEBHOOK_URL".into(), sentry.hook_url()),
        ("VWO_API_BASE_URL".into(), vwo.base_url()),
        ("VWO_SETTINGS_BASE_URL".into(), vwo.settings_base_url()),
        ("VWO_MIN_INTERVAL_MS".into(), "0".into()),
        ("STATE_TABLE".into(), table),
    ]);
    vars.extend(extra.iter().map(|&(k, v)| (k.to_owned(), v.to_owned())));
    Ctx {
        vars,
        vwo,
        sentry,
        auth,
        prefix,
    }
}

/// A cold-started function instance (its own caches and connections), as one Lambda container.
pub(crate) async fn instance(ctx: &Ctx) -> App {
    let config = Config::from_vars(&testkit::vars_from(&ctx.vars)).unwrap();
    let aws = bridge_platform::aws::aws_config().await;
    let app = App::new(config, testkit::ssm(&aws), &aws).unwrap();
    app.warm_up().await;
    app
}

/// An instance whose DynamoDB calls go through `endpoint` (a proxy in front of moto).
async fn instance_with_dynamodb(ctx: &Ctx, endpoint: &str) -> App {
    let config = Config::from_vars(&testkit::vars_from(&ctx.vars)).unwrap();
    let aws = bridge_platform::aws::aws_config().await;
    let table = config.state_table.clone();
    let mut app = App::new(config, testkit::ssm(&aws), &aws).unwrap();
    let dynamodb = aws_sdk_dynamodb::config::Builder::from(&aws)
        .endpoint_url(endpoint)
        .build();
    app.state = StateStore::from_client(aws_sdk_dynamodb::Client::from_conf(dynamodb), table);
    app.warm_up().await;
    app
}

pub(crate) fn webhook(auth: &str, action: &str, timestamp: i64) -> Value {
    testkit::vwo_hook_event(auth, action, timestamp)
}

/// The webhook VWO sends to the URL configured for environment `env` (`?environment=<env>`).
fn webhook_for(env: &str, auth: &str, timestamp: i64) -> Value {
    let mut event = webhook(auth, "feature_flag_updated", timestamp);
    event["rawQueryString"] = json!(format!("environment={env}"));
    event["queryStringParameters"] = json!({ "environment": env });
    event
}

pub(crate) async fn deliver(app: &App, event: &Value) -> (u16, Value, Response<Body>) {
    let request = lambda_http::request::from_str(&event.to_string()).unwrap();
    let response = handle(app, request).await;
    let body = match response.body() {
        Body::Text(t) => serde_json::from_str(t).unwrap(),
        other => panic!("text body expected, got {other:?}"),
    };
    testkit::leaks::assert_clean(&format!("{body} {:?}", response.headers()));
    (response.status().as_u16(), body, response)
}

fn change(action: &str, flag: &str, timestamp: i64) -> Value {
    change_in("production", action, flag, timestamp)
}

fn change_in(env: &str, action: &str, flag: &str, timestamp: i64) -> Value {
    let a = match action {
        "created" => FlagAction::Created,
        "updated" => FlagAction::Updated,
        _ => FlagAction::Deleted,
    };
    json!({"action": action, "change_id": change_id(env, flag, a, timestamp),
        "created_at": "2026-11-23T06:40:00+00:00", "created_by": {"id": "vwo", "type": "name"}, "flag": flag})
}

#[tokio::test(flavor = "multi_thread")]
async fn a_baseline_then_one_toggle_sends_exactly_one_update() {
    let ctx = setup("toggle", &[]).await;
    let app = instance(&ctx).await;
    let (status, body, _) =
        deliver(&app, &webhook(&ctx.auth, "feature_flag_updated", TS - 60)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"baseline": {"flags": 2}}));
    assert_eq!(ctx.sentry.deliveries(), 0, "the baseline sends nothing");

    ctx.vwo
        .set_enabled("checkout-new-flow", "production", false);
    let (status, body, _) = deliver(&app, &webhook(&ctx.auth, "feature_flag_updated", TS)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["sent"][0]["flag"], "checkout-new-flow");
    assert_eq!(
        ctx.sentry.accepted_changes(),
        vec![change("updated", "checkout-new-flow", TS)]
    );
    assert!(ctx.sentry.rejections().is_empty());

    // A change in another environment is not a change here.
    ctx.vwo.set_enabled("search-v2", "staging", true);
    let (status, body, _) =
        deliver(&app, &webhook(&ctx.auth, "feature_flag_updated", TS + 5)).await;
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
        let (_, body, _) =
            deliver(&app, &webhook(&ctx.auth, "feature_flag_updated", TS - 60)).await;
        assert_eq!(body, json!({"baseline": {"flags": 4}}), "{mode:?}");
        ctx.vwo.add_flag("pricing-banner", true);
        ctx.vwo.remove_flag("old-banner");
        let mut rules = ctx.vwo.rules("rollout-copy", "production");
        rules[0].traffic = 10;
        ctx.vwo.set_rules("rollout-copy", "production", rules);
        let (status, body, _) =
            deliver(&app, &webhook(&ctx.auth, "feature_flag_updated", TS)).await;
        assert_eq!(status, 200, "{mode:?}: {body}");
        let mut got = ctx.sentry.accepted_changes();
        got.sort_by_key(|c| c["flag"].as_str().unwrap().to_owned());
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
        deliver(&app, &webhook(&ctx.auth, "feature_flag_updated", TS - 60)).await;
        ctx.vwo
            .set_enabled("checkout-new-flow", "production", false);
        ctx.vwo.remove_flag("doomed");
        let before = ctx.vwo.api_requests().len();
        let (status, body, _) =
            deliver(&app, &webhook(&ctx.auth, "feature_flag_updated", TS)).await;
        assert_eq!(status, 200, "{body}");
        let mut got = ctx.sentry.accepted_changes();
        got.sort_by_key(|c| c["flag"].as_str().unwrap().to_owned());
        assert_eq!(
            got,
            vec![
                change("updated", "checkout-new-flow", TS),
                change("deleted", "doomed", TS)
            ],
            "{mode:?}"
        );
        let lookups: Vec<String> = ctx.vwo.api_requests()[before..]
            .iter()
            .filter(|r| r.raw_path.contains("/features/"))
            .map(|r| r.raw_path.clone())
            .collect();
        let expected = if mode == OffFlags::Omitted { 2 } else { 1 };
        assert_eq!(
            lookups.len(),
            expected,
            "{mode:?}: one lookup per flag that left the file: {lookups:?}"
        );
        // Switched on again: one more update, no lookup.
        ctx.vwo.set_enabled("checkout-new-flow", "production", true);
        let (status, _, _) =
            deliver(&app, &webhook(&ctx.auth, "feature_flag_updated", TS + 60)).await;
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
    let mut got = ctx.sentry.accepted_changes();
    got.sort_by_key(|c| c["flag"].as_str().unwrap().to_owned());
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
    assert_eq!(
        ctx.sentry.accepted_changes(),
        vec![change("updated", "checkout-new-flow", TS)]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_thousand_flags_cost_one_settings_read_per_delivery() {
    let ctx = setup("thousand", &[("LISTING_PAGES_PER_DELIVERY", "50")]).await;
    ctx.vwo.add_many_flags(1000);
    let app = instance(&ctx).await;
    let (_, body, _) = deliver(&app, &webhook(&ctx.auth, "feature_flag_updated", TS - 60)).await;
    assert_eq!(body, json!({"baseline": {"flags": 1002}}));
    let api_before = ctx.vwo.api_requests().len();
    let settings_before = ctx.vwo.settings_reads().len();
    ctx.vwo.set_enabled("flag-0500", "production", false);
    let (status, body, _) = deliver(&app, &webhook(&ctx.auth, "feature_flag_updated", TS)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(ctx.vwo.settings_reads().len() - settings_before, 1);
    let api: Vec<String> = ctx.vwo.api_requests()[api_before..]
        .iter()
        .map(|r| r.raw_path.clone())
        .collect();
    // One lookup for the flag that left the file, one timeline read for the actor.
    assert_eq!(api.len(), 2, "{api:?}");
    assert_eq!(
        ctx.sentry.accepted_changes(),
        vec![change("updated", "flag-0500", TS)]
    );
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
    let (status, body, _) = deliver(&app, &webhook(&ctx.auth, "feature_flag_updated", TS)).await;
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
    let (status, body, _) = deliver(&app, &webhook(&ctx.auth, "feature_flag_updated", TS)).await;
    assert_eq!((status, body), (200, json!({"unchanged": true})));
    assert_eq!(ctx.sentry.deliveries(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_settings_read_sends_nothing_and_keeps_the_snapshot() {
    let vars = [
        ("VWO_SETTINGS_TIMEOUT_MS", "1500"),
        ("VWO_SETTINGS_MAX_BYTES", "1048576"),
    ];
    let ctx = setup("bad-settings", &vars).await;
    let app = instance(&ctx).await;
    deliver(&app, &webhook(&ctx.auth, "feature_flag_updated", TS - 60)).await;
    ctx.vwo
        .set_enabled("checkout-new-flow", "production", false);
    let cases = [
        ("HTML 200", VwoScript::Html, 502),
        ("truncated body", VwoScript::Truncated, 502),
        ("JSON null", VwoScript::Body(Value::Null), 502),
        (
            "a list, not a settings file",
            VwoScript::Body(json!({"_data": []})),
            502,
        ),
        (
            "no features key but no campaigns either",
            VwoScript::Body(json!({"accountId": testkit::vwo::ACCOUNT_ID, "version": 3})),
            502,
        ),
        ("over the size cap", VwoScript::Huge(2 * 1024 * 1024), 502),
        ("429", VwoScript::Status(429, None), 503),
        ("503 maintenance", VwoScript::Status(503, Some(60)), 503),
        ("404", VwoScript::Status(404, None), 502),
    ];
    for (name, script, expected) in cases {
        ctx.vwo.script_settings([script]);
        let started = std::time::Instant::now();
        let (status, body, _) =
            deliver(&app, &webhook(&ctx.auth, "feature_flag_updated", TS)).await;
        assert_eq!(status, expected, "{name}: {body}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(1),
            "{name}: answered at once, not after sleeping"
        );
        assert_eq!(ctx.sentry.deliveries(), 0, "{name}: nothing sent");
    }
    // VWO's next delivery finds the real change, and only it.
    let (status, _, _) = deliver(&app, &webhook(&ctx.auth, "feature_flag_updated", TS)).await;
    assert_eq!(status, 200);
    assert_eq!(
        ctx.sentry.accepted_changes(),
        vec![change("updated", "checkout-new-flow", TS)]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_baseline_read_records_nothing() {
    let ctx = setup("bad-baseline", &[]).await;
    let app = instance(&ctx).await;
    ctx.vwo.script_settings([VwoScript::Html]);
    let (status, _, _) = deliver(&app, &webhook(&ctx.auth, "feature_flag_updated", TS - 60)).await;
    assert_eq!(status, 502);
    ctx.vwo.script([VwoScript::Status(200, None)]);
    let (status, body, _) =
        deliver(&app, &webhook(&ctx.auth, "feature_flag_updated", TS - 60)).await;
    assert_eq!(status, 502, "a workspace answer that is not JSON: {body}");
    let (_, body, _) = deliver(&app, &webhook(&ctx.auth, "feature_flag_updated", TS - 60)).await;
    assert_eq!(body, json!({"baseline": {"flags": 2}}));
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
    let paths: Vec<String> = ctx
        .vwo
        .api_requests()
        .iter()
        .map(|r| r.raw_path.clone())
        .collect();
    assert!(
        paths
            .iter()
            .all(|p| p.starts_with("/api/v2/accounts/654321/features")),
        "only the baseline's flag list: {paths:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_environment_is_a_clear_bad_request() {
    let ctx = setup("unknown-env", &[]).await;
    let app = instance(&ctx).await;
    let (status, body, _) = deliver(&app, &webhook_for("qa", &ctx.auth, TS)).await;
    assert_eq!(status, 400);
    assert_eq!(
        body["error"],
        "bad request: VWO has no environment \"qa\" in this workspace's projects"
    );
    assert!(ctx.vwo.settings_reads().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_retried_commit_never_drops_another_deliverys_lease() {
    let proxy = testkit::aws_proxy::AwsProxy::start(&moto().endpoint).await;
    let ctx = setup("lost-commit", &[]).await;
    let table = ctx.vars["STATE_TABLE"].clone();
    let app = instance_with_dynamodb(&ctx, &proxy.endpoint).await;
    deliver(&app, &webhook(&ctx.auth, "feature_flag_updated", TS - 60)).await;
    ctx.vwo
        .set_enabled("checkout-new-flow", "production", false);
    // The commit takes effect, its answer is lost, and before the SDK retries it another
    // delivery claims the environment at the new version.
    let later = testkit::now_secs() + 600;
    proxy.fail_after_write(
        "committed_by",
        "DynamoDB_20120810.UpdateItem",
        json!({
            "TableName": table,
            "Key": {"environment": {"S": "production"}},
            "UpdateExpression": "SET lease_owner = :o, lease_expires = :e",
            "ExpressionAttributeValues": {":o": {"S": "another-delivery"}, ":e": {"N": later.to_string()}},
        }),
    );
    let (status, body, _) = deliver(&app, &webhook(&ctx.auth, "feature_flag_updated", TS)).await;
    assert_eq!(status, 200, "the commit took effect: {body}");
    assert!(
        proxy.calls("DynamoDB_20120810.UpdateItem") >= 3,
        "claim, commit and its retry went through the proxy"
    );
    let item = moto()
        .call(
            "DynamoDB_20120810.GetItem",
            json!({"TableName": table, "Key": {"environment": {"S": "production"}}, "ConsistentRead": true}),
        )
        .await;
    assert_eq!(
        item["Item"]["lease_owner"]["S"], "another-delivery",
        "the other delivery's lease survives the retried commit: {item}"
    );
    assert_eq!(item["Item"]["version"]["N"], "2");
    assert_eq!(
        ctx.sentry.accepted_changes(),
        vec![change("updated", "checkout-new-flow", TS)]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lease_holds_the_environment_until_finished_or_abandoned() {
    let ctx = setup("lease-api", &[]).await;
    let app = instance(&ctx).await;
    let state = &app.state;
    let (lease, wait) = (Duration::from_secs(60), Duration::from_millis(300));
    let acquired = state
        .acquire("staging", "first", lease, wait)
        .await
        .unwrap();
    assert!(matches!(acquired, Acquired::Empty), "{acquired:?}");
    let baseline = Snapshot {
        format: snapshot::FORMAT,
        ..Snapshot::default()
    };
    assert!(state.create_baseline("staging", &baseline).await.unwrap());

    let Acquired::Lease(held) = state
        .acquire("staging", "first", lease, wait)
        .await
        .unwrap()
    else {
        panic!("a stored snapshot is leased");
    };
    assert_eq!(held.stored().version, 1);
    // Another delivery waits, then is told to come back.
    let busy = state
        .acquire("staging", "second", lease, wait)
        .await
        .unwrap_err();
    assert_eq!(busy.status(), 503, "{busy}");
    held.abandon().await;

    let Acquired::Lease(held) = state
        .acquire("staging", "second", lease, wait)
        .await
        .unwrap()
    else {
        panic!("an abandoned lease is free");
    };
    let mut next = baseline.clone();
    next.sdk_key = Some("sdk-key".into());
    held.finish(&next).await.unwrap();
    let Acquired::Lease(held) = state
        .acquire("staging", "third", lease, wait)
        .await
        .unwrap()
    else {
        panic!("a finished lease is free");
    };
    assert_eq!(held.stored().version, 2);
    assert_eq!(held.stored().snapshot, next);
    // Finishing with what was read changes nothing but the lease.
    held.finish(&next).await.unwrap();
    let Acquired::Lease(held) = state
        .acquire("staging", "fourth", lease, wait)
        .await
        .unwrap()
    else {
        panic!("the lease was dropped");
    };
    assert_eq!(held.stored().version, 2);
    held.abandon().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_secret_is_refused_and_nothing_is_sent_or_read() {
    let ctx = setup("auth", &[]).await;
    let app = instance(&ctx).await;
    for auth in ["wrong", "", &ctx.auth.to_uppercase()] {
        let (status, body, _) = deliver(&app, &webhook(auth, "feature_flag_updated", TS)).await;
        assert_eq!(status, 401, "{auth:?}: {body}");
        assert_eq!(body["error"], "unauthorized: invalid x-vwo-auth");
    }
    let mut no_header = webhook(&ctx.auth, "feature_flag_updated", TS);
    no_header["headers"]
        .as_object_mut()
        .unwrap()
        .remove("x-vwo-auth");
    let (status, _, _) = deliver(&app, &no_header).await;
    assert_eq!(status, 401);
    assert!(ctx.vwo.requests().is_empty());
    assert_eq!(ctx.sentry.deliveries(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_previous_secret_is_accepted_during_a_rotation() {
    let ctx = setup("rotation", &[]).await;
    let moto = moto();
    moto.put_secure_string(
        &format!("{}/vwo-webhook-secret/previous", ctx.prefix),
        &ctx.auth,
    )
    .await;
    moto.put_secure_string(
        &format!("{}/vwo-webhook-secret", ctx.prefix),
        "brand-new-secret",
    )
    .await;
    let app = instance(&ctx).await;
    let (old, _, _) = deliver(&app, &webhook(&ctx.auth, "feature_flag_updated", TS)).await;
    let (new, _, _) = deliver(
        &app,
        &webhook("brand-new-secret", "feature_flag_updated", TS),
    )
    .await;
    assert_eq!((old, new), (200, 200));
    moto.delete_parameter(&format!("{}/vwo-webhook-secret/previous", ctx.prefix))
        .await;
    let app = instance(&ctx).await;
    let (old, _, _) = deliver(&app, &webhook(&ctx.auth, "feature_flag_updated", TS)).await;
    assert_eq!(
        old, 401,
        "the old secret stops working when /previous is deleted"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_delivery_five_times_sends_one_event() {
    let ctx = setup("repeat", &[]).await;
    let app = instance(&ctx).await;
    deliver(&app, &webhook(&ctx.auth, "feature_flag_updated", TS - 60)).await;
    ctx.vwo.set_enabled("search-v2", "production", true);
    let event = webhook(&ctx.auth, "feature_flag_updated", TS);
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(deliver(&app, &event).await.0);
    }
    assert_eq!(statuses, [200; 5], "{:?}", deliver(&app, &event).await.1);
    assert_eq!(
        ctx.sentry.accepted_changes(),
        vec![change("updated", "search-v2", TS)]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sentry_failure_leaves_the_change_for_vwos_retry() {
    let ctx = setup("sentry-500", &[]).await;
    let app = instance(&ctx).await;
    deliver(&app, &webhook(&ctx.auth, "feature_flag_updated", TS - 60)).await;
    ctx.vwo
        .set_enabled("checkout-new-flow", "production", false);
    ctx.sentry.script([SentryScript::Status(500)]);
    let event = webhook(&ctx.auth, "feature_flag_updated", TS);
    let (status, body, _) = deliver(&app, &event).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"], "Sentry failed: HTTP 500: ");
    assert!(ctx.sentry.accepted_changes().is_empty());
    // VWO retries the same delivery: the change arrives once, with the same id.
    let (status, _, _) = deliver(&app, &event).await;
    assert_eq!(status, 200);
    let (status, body, _) = deliver(&app, &event).await;
    assert_eq!((status, body), (200, json!({"unchanged": true})));
    assert_eq!(
        ctx.sentry.accepted_changes(),
        vec![change("updated", "checkout-new-flow", TS)]
    );
    assert_eq!(ctx.sentry.deliveries(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_200_with_a_validation_body_is_a_failure() {
    let ctx = setup("sentry-body", &[]).await;
    let app = instance(&ctx).await;
    deliver(&app, &webhook(&ctx.auth, "feature_flag_updated", TS - 60)).await;
    ctx.vwo
        .set_enabled("checkout-new-flow", "production", false);
    ctx.sentry.script([SentryScript::Body(
        json!({"data": {"0": {"flag": ["Ensure this field has no more than 100 characters."]}}}),
    )]);
    let event = webhook(&ctx.auth, "feature_flag_updated", TS);
    let (status, body, _) = deliver(&app, &event).await;
    assert_eq!(status, 502, "{body}");
    assert_opens(&body["error"], "Sentry failed: rejected the payload");
    let (status, _, _) = deliver(&app, &event).await;
    assert_eq!(status, 200);
    assert_eq!(
        ctx.sentry.accepted_changes(),
        vec![change("updated", "checkout-new-flow", TS)]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_deliveries_never_send_a_change_twice() {
    let ctx = setup("concurrent", &[]).await;
    let first = instance(&ctx).await;
    deliver(&first, &webhook(&ctx.auth, "feature_flag_updated", TS - 60)).await;
    ctx.vwo
        .set_enabled("checkout-new-flow", "production", false);
    let event = webhook(&ctx.auth, "feature_flag_updated", TS);
    let mut apps = vec![first];
    apps.push(instance(&ctx).await);
    let (a, b) = tokio::join!(deliver(&apps[0], &event), deliver(&apps[1], &event));
    let mut statuses = [a.0, b.0];
    statuses.sort();
    assert!(
        statuses == [200, 200] || statuses == [200, 503],
        "{statuses:?}"
    );
    // VWO retries the one that was told to: nothing new is sent.
    let (status, _, _) = deliver(&apps[1], &event).await;
    assert_eq!(status, 200);
    assert_eq!(
        ctx.sentry.accepted_changes(),
        vec![change("updated", "checkout-new-flow", TS)]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_webhook_url_without_environment_is_a_bad_request() {
    let ctx = setup("no-env", &[]).await;
    let app = instance(&ctx).await;
    let mut event = webhook(&ctx.auth, "feature_flag_updated", TS);
    event["rawQueryString"] = json!("");
    event["queryStringParameters"] = Value::Null;
    let (status, body, _) = deliver(&app, &event).await;
    assert_eq!(status, 400);
    assert_says(&body["error"], "?environment=");
}

#[tokio::test(flavor = "multi_thread")]
async fn flag_keys_longer_than_100_characters_are_skipped_not_truncated() {
    let ctx = setup("long-key", &[]).await;
    let app = instance(&ctx).await;
    deliver(&app, &webhook(&ctx.auth, "feature_flag_updated", TS - 60)).await;
    let long = "k".repeat(101);
    ctx.vwo.add_flag(&long, true);
    ctx.vwo.set_enabled("search-v2", "production", true);
    let (status, body, _) = deliver(&app, &webhook(&ctx.auth, "feature_flag_updated", TS)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["skipped"], json!([long]));
    assert_eq!(
        ctx.sentry.accepted_changes(),
        vec![change("updated", "search-v2", TS)]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_timeline_names_who_made_the_change() {
    let ctx = setup("actor", &[]).await;
    let app = instance(&ctx).await;
    deliver(&app, &webhook(&ctx.auth, "feature_flag_updated", TS - 60)).await;
    ctx.vwo.set_feeds(vec![json!({"id": 1, "type": "feature", "what": "Feature flag <b>checkout-new-flow</b> disabled", "when": TS.to_string(), "who": {"name": "Ada Admin"}})]);
    ctx.vwo
        .set_enabled("checkout-new-flow", "production", false);
    deliver(&app, &webhook(&ctx.auth, "feature_flag_updated", TS)).await;
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

/// A hostile or malformed delivery: (name, method, query, x-vwo-auth, content type, body,
/// expected status, expected message).
type BadDelivery<'a> = (
    &'a str,
    &'a str,
    &'a str,
    Option<String>,
    &'a str,
    Vec<u8>,
    u16,
    &'a str,
);

#[tokio::test(flavor = "multi_thread")]
async fn bad_requests_get_their_status_and_reach_no_one() {
    let ctx = setup("bad-input", &[("MAX_BODY_BYTES", "4096")]).await;
    let app = instance(&ctx).await;
    let body = br#"{"timestamp": 1795416000, "event": "settings_changed", "action": "feature_flag_updated", "triggered_by": "vwo"}"#.to_vec();
    let deep = format!(
        r#"{{"action":"x","timestamp":{}{}}}"#,
        "[".repeat(1500),
        "]".repeat(1500)
    );
    let auth = ctx.auth.clone();
    let cases: Vec<BadDelivery> = vec![
        (
            "no x-vwo-auth",
            "POST",
            "environment=production",
            None,
            "application/json",
            body.clone(),
            401,
            "missing x-vwo-auth",
        ),
        (
            "empty x-vwo-auth",
            "POST",
            "environment=production",
            Some(String::new()),
            "application/json",
            body.clone(),
            401,
            "invalid x-vwo-auth",
        ),
        (
            "wrong secret",
            "POST",
            "environment=production",
            Some("nope".into()),
            "application/json",
            body.clone(),
            401,
            "invalid x-vwo-auth",
        ),
        (
            "uppercase secret",
            "POST",
            "environment=production",
            Some(auth.to_uppercase()),
            "application/json",
            body.clone(),
            401,
            "invalid x-vwo-auth",
        ),
        (
            "secret with a suffix",
            "POST",
            "environment=production",
            Some(format!("{auth}x")),
            "application/json",
            body.clone(),
            401,
            "invalid x-vwo-auth",
        ),
        (
            "prefix of the secret",
            "POST",
            "environment=production",
            Some(auth[..auth.len() - 1].to_owned()),
            "application/json",
            body.clone(),
            401,
            "invalid x-vwo-auth",
        ),
        (
            "secret too long for a header",
            "POST",
            "environment=production",
            Some("a".repeat(2000)),
            "application/json",
            body.clone(),
            400,
            "too long",
        ),
        (
            "GET",
            "GET",
            "environment=production",
            Some(auth.clone()),
            "application/json",
            body.clone(),
            405,
            "method GET not allowed",
        ),
        (
            "DELETE",
            "DELETE",
            "environment=production",
            Some(auth.clone()),
            "application/json",
            body.clone(),
            405,
            "method DELETE not allowed",
        ),
        (
            "text/plain",
            "POST",
            "environment=production",
            Some(auth.clone()),
            "text/plain",
            body.clone(),
            415,
            "unsupported content type",
        ),
        (
            "body over the cap",
            "POST",
            "environment=production",
            Some(auth.clone()),
            "application/json",
            vec![b' '; 5000],
            413,
            "too large",
        ),
        (
            "truncated JSON",
            "POST",
            "environment=production",
            Some(auth.clone()),
            "application/json",
            body[..body.len() / 2].to_vec(),
            400,
            "not a VWO webhook",
        ),
        (
            "JSON array",
            "POST",
            "environment=production",
            Some(auth.clone()),
            "application/json",
            b"[1,2]".to_vec(),
            400,
            "not a JSON object",
        ),
        (
            "duplicate keys",
            "POST",
            "environment=production",
            Some(auth.clone()),
            "application/json",
            br#"{"action":"a","action":"b"}"#.to_vec(),
            400,
            "duplicate field",
        ),
        (
            "nesting 1500 deep",
            "POST",
            "environment=production",
            Some(auth.clone()),
            "application/json",
            deep.into_bytes(),
            400,
            "recursion limit",
        ),
        (
            "no environment",
            "POST",
            "",
            Some(auth.clone()),
            "application/json",
            body.clone(),
            400,
            "?environment=",
        ),
        (
            "dot-dot environment",
            "POST",
            "environment=..",
            Some(auth.clone()),
            "application/json",
            body.clone(),
            400,
            "is not an identifier",
        ),
        (
            "path-traversal environment",
            "POST",
            "environment=..%2Fproduction",
            Some(auth.clone()),
            "application/json",
            body.clone(),
            400,
            "contains a slash",
        ),
    ];
    assert!(cases.len() >= 15);
    for (name, method, query, secret, content_type, body, expected, message) in cases {
        let mut headers = vec![("content-type", content_type)];
        if let Some(secret) = secret.as_deref() {
            headers.push(("x-vwo-auth", secret));
        }
        let event = function_url_event(method, query, &headers, &body, false);
        let (status, response, _) = deliver(&app, &event).await;
        assert_eq!(status, expected, "{name}: {response}");
        assert!(
            response["error"]
                .as_str()
                .unwrap_or_default()
                .contains(message),
            "{name}: {response}"
        );
        assert!(ctx.vwo.requests().is_empty(), "{name}: VWO was called");
        assert_eq!(ctx.sentry.deliveries(), 0, "{name}: Sentry was called");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sentry_timeout_leaves_the_change_for_vwos_retry() {
    let ctx = setup("sentry-timeout", &[("SENTRY_TIMEOUT_MS", "300")]).await;
    let app = instance(&ctx).await;
    deliver(&app, &webhook(&ctx.auth, "feature_flag_updated", TS - 60)).await;
    ctx.vwo.set_enabled("search-v2", "production", true);
    ctx.sentry
        .script([SentryScript::Delay(std::time::Duration::from_secs(2))]);
    let event = webhook(&ctx.auth, "feature_flag_updated", TS);
    let (status, body, _) = deliver(&app, &event).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (502, Some("Sentry failed: timed out"))
    );
    let (status, _, _) = deliver(&app, &event).await;
    assert_eq!(status, 200);
    // The timed-out request may have been accepted late by the stand-in; the retry's is the one
    // that counts, and it carries the same change_id.
    let changes = ctx.sentry.accepted_changes();
    assert!(
        changes
            .iter()
            .all(|c| *c == change("updated", "search-v2", TS)),
        "{changes:?}"
    );
    let (status, body, _) = deliver(&app, &event).await;
    assert_eq!((status, body), (200, json!({"unchanged": true})));
}

#[tokio::test(flavor = "multi_thread")]
async fn twenty_concurrent_deliveries_send_each_change_once() {
    let ctx = setup("twenty", &[]).await;
    let mut apps = Vec::new();
    for _ in 0..20 {
        apps.push(instance(&ctx).await);
    }
    deliver(
        &apps[0],
        &webhook(&ctx.auth, "feature_flag_updated", TS - 60),
    )
    .await;
    ctx.vwo
        .set_enabled("checkout-new-flow", "production", false);
    ctx.vwo.add_flag("pricing-banner", true);
    let event = webhook(&ctx.auth, "feature_flag_updated", TS);
    let mut pending: Vec<usize> = (0..20).collect();
    // Like VWO: every delivery that did not get a 2xx is retried, until all have.
    for round in 0..10 {
        let results = futures_join(&apps, &pending, &event).await;
        pending = results
            .into_iter()
            .filter(|(_, status)| *status != 200)
            .map(|(i, _)| i)
            .collect();
        if pending.is_empty() {
            break;
        }
        assert!(round < 9, "deliveries still failing: {pending:?}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let mut changes = ctx.sentry.accepted_changes();
    changes.sort_by_key(|c| c["flag"].as_str().unwrap().to_owned());
    assert_eq!(
        changes,
        vec![
            change("updated", "checkout-new-flow", TS),
            change("created", "pricing-banner", TS)
        ]
    );
}

/// Delivers `event` to the apps at `indices` at once; returns (index, status) pairs.
async fn futures_join(apps: &[App], indices: &[usize], event: &Value) -> Vec<(usize, u16)> {
    let mut set = Vec::new();
    for &i in indices {
        set.push(async move { (i, deliver(&apps[i], event).await.0) });
    }
    let mut out = Vec::new();
    // Poll them together on this task: they interleave on the multi-thread runtime's I/O.
    let joined = testkit::join_all(set).await;
    out.extend(joined);
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn rotating_the_webhook_secret_during_a_stream_fails_no_delivery() {
    let ctx = setup("stream-webhook", &[]).await;
    let app = instance(&ctx).await;
    let name = format!("{}/vwo-webhook-secret", ctx.prefix);
    for i in 0..20 {
        if i == 10 {
            // The documented rotation: keep the old value under /previous, put the new one.
            moto()
                .put_secure_string(&format!("{name}/previous"), &ctx.auth)
                .await;
            moto().put_secure_string(&name, "brand-new-secret").await;
        }
        // VWO switches to the new secret a little later than Parameter Store.
        let secret = if i < 13 {
            ctx.auth.as_str()
        } else {
            "brand-new-secret"
        };
        let (status, body, _) =
            deliver(&app, &webhook(secret, "feature_flag_updated", TS + i)).await;
        assert_eq!(status, 200, "delivery {i}: {body}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn rotating_the_signing_secret_loses_no_change() {
    let ctx = setup("stream-signing", &[]).await;
    let app = instance(&ctx).await;
    deliver(&app, &webhook(&ctx.auth, "feature_flag_updated", TS - 60)).await;
    for i in 0..6i64 {
        if i == 3 {
            moto()
                .put_secure_string(
                    &format!("{}/sentry-signing-secret", ctx.prefix),
                    "rotated-signing",
                )
                .await;
            ctx.sentry.set_secret("rotated-signing");
        }
        ctx.vwo.set_enabled("search-v2", "production", i % 2 == 0);
        let (status, body, _) =
            deliver(&app, &webhook(&ctx.auth, "feature_flag_updated", TS + i)).await;
        assert_eq!(status, 200, "delivery {i}: {body}");
    }
    assert_eq!(ctx.sentry.accepted_changes().len(), 6);
    assert_eq!(
        ctx.sentry.rejections(),
        vec!["bad signature".to_owned()],
        "one 401, then the re-read secret"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hanging_dynamodb_is_a_503_within_the_timeouts() {
    let proxy = testkit::aws_proxy::AwsProxy::start(&moto().endpoint).await;
    let ctx = setup("dynamodb-hang", &[]).await;
    let app = instance_with_dynamodb(&ctx, &proxy.endpoint).await;
    proxy.set_hang(true);
    let started = std::time::Instant::now();
    let (status, body, _) = deliver(&app, &webhook(&ctx.auth, "feature_flag_updated", TS)).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(
        body["error"],
        "state store unavailable; the request was not acted on (details in the log)"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(6),
        "answered after {:?}",
        started.elapsed()
    );
    assert_eq!(ctx.sentry.deliveries(), 0);
}
