//! Change tracking's handler, called directly, with moto's SSM and DynamoDB, a VWO stand-in that
//! serves the REST API and per-environment SDK settings files as VWO publishes them (see
//! `tests/fixtures/README.md`), whose flags the tests edit between deliveries, and a Sentry
//! stand-in that verifies `X-Sentry-Signature` and validates every body against Sentry's schema.

mod bad_requests;
mod failures;
mod reports;

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
    pub(crate) prefix: String,
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

/// `n` cold-started instances, as Lambda scales out.
pub(crate) async fn instances(ctx: &Ctx, n: usize) -> Vec<App> {
    let mut apps = Vec::with_capacity(n);
    for _ in 0..n {
        apps.push(instance(ctx).await);
    }
    apps
}

/// An instance whose DynamoDB calls go through `endpoint` (a proxy in front of moto).
pub(crate) async fn instance_with_dynamodb(ctx: &Ctx, endpoint: &str) -> App {
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
pub(crate) fn webhook_for(env: &str, auth: &str, timestamp: i64) -> Value {
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

pub(crate) fn change(action: &str, flag: &str, timestamp: i64) -> Value {
    change_in("production", action, flag, timestamp)
}

pub(crate) fn change_in(env: &str, action: &str, flag: &str, timestamp: i64) -> Value {
    let a = match action {
        "created" => FlagAction::Created,
        "updated" => FlagAction::Updated,
        _ => FlagAction::Deleted,
    };
    json!({"action": action, "change_id": change_id(env, flag, a, timestamp),
        "created_at": "2026-11-23T06:40:00+00:00", "created_by": {"id": "vwo", "type": "name"}, "flag": flag})
}

/// Asserts that Sentry accepted exactly `changes`, in order, since the test began.
pub(crate) fn assert_sentry_has(ctx: &Ctx, changes: &[Value]) {
    assert_eq!(ctx.sentry.accepted_changes(), changes);
}

/// VWO's `feature_flag_updated` webhook, sent at `timestamp`, delivered to `app`.
pub(crate) async fn flag_updated(
    ctx: &Ctx,
    app: &App,
    timestamp: i64,
) -> (u16, Value, Response<Body>) {
    deliver(app, &webhook(&ctx.auth, "feature_flag_updated", timestamp)).await
}

/// The changes Sentry accepted since the test began, by flag key.
pub(crate) fn sorted_changes(ctx: &Ctx) -> Vec<Value> {
    let mut changes = ctx.sentry.accepted_changes();
    changes.sort_by_key(|c| c["flag"].as_str().unwrap_or_default().to_owned());
    changes
}

/// A context and a function instance whose environment's baseline is recorded (VWO's first
/// delivery, a minute before [`TS`]): the next delivery reports what changed.
pub(crate) async fn baselined(name: &str) -> (Ctx, App) {
    let ctx = setup(name, &[]).await;
    let app = instance(&ctx).await;
    flag_updated(&ctx, &app, TS - 60).await;
    (ctx, app)
}
