//! The kill switch's handler, called directly, with secrets in moto's SSM and a VWO stand-in.
//! Every test asserts what Sentry would see (status, body, headers) and what VWO received.

mod alerts;
mod failures;

use std::sync::Arc;
use std::time::Duration;
use testkit::answers::{assert_opens, assert_says};

use bridge_platform::secrets::StaticParameters;
use lambda_http::{Body, Response};
use sentry_to_vwo::config::Config;
use sentry_to_vwo::{handle, App};
use serde_json::{json, Value};

use crate::moto;
use testkit::vwo::{FakeVwo, Script};
use testkit::{function_url_event, hmac_hex, now_secs, sample, sentry_hook_event};

pub(crate) const FLAG_QUERY: &str = "feature=checkout-new-flow&environment=production";

pub(crate) struct Ctx {
    pub(crate) app: App,
    pub(crate) vwo: FakeVwo,
    pub(crate) secret: String,
    token: String,
    prefix: String,
}

/// Secrets in SSM under `/test/{name}/...`, a VWO stand-in, and an app configured with `extra`.
pub(crate) async fn setup(name: &str, extra: &[(&str, &str)]) -> Ctx {
    setup_via(name, extra, None, &[]).await
}

/// As [`setup`], with the VWO stand-in's environments renamed (`from`, `to`) before the app starts.
pub(crate) async fn setup_renamed(
    name: &str,
    extra: &[(&str, &str)],
    renames: &[(&str, &str)],
) -> Ctx {
    setup_via(name, extra, None, renames).await
}

/// As [`setup`], with SSM reached through `ssm_endpoint` (a proxy) instead of moto directly.
pub(crate) async fn setup_via(
    name: &str,
    extra: &[(&str, &str)],
    ssm_endpoint: Option<&str>,
    renames: &[(&str, &str)],
) -> Ctx {
    let moto = moto();
    let prefix = format!("/test/kill/{name}");
    let secrets = moto.kill_switch_secrets(&prefix, name).await;
    let (secret, token, mut vars) = (secrets.client_secret, secrets.vwo_token, secrets.vars);
    testkit::leaks::watch(&[&secret, &token, "rotated-token", "new-client-secret"]);
    let vwo = FakeVwo::start(&token).await;
    vwo.add_flag("checkout-new-flow", true);
    vwo.add_flag("search-v2", true);
    for (from, to) in renames {
        vwo.rename_environment(from, to);
    }
    vars.extend([
        ("VWO_API_BASE_URL".into(), vwo.base_url()),
        ("VWO_MIN_INTERVAL_MS".into(), "0".into()),
        ("VWO_RETRY_BUDGET_MS".into(), "4000".into()),
    ]);
    vars.extend(extra.iter().map(|&(k, v)| (k.to_owned(), v.to_owned())));
    let config = Config::from_vars(&move |n: &str| vars.get(n).cloned()).unwrap();
    let aws = crate::aws_via(ssm_endpoint).await;
    let app = App::new(config, testkit::ssm(&aws), &aws).unwrap();
    app.warm_up().await;
    Ctx {
        app,
        vwo,
        secret,
        token,
        prefix,
    }
}

pub(crate) async fn send(ctx: &Ctx, event: Value) -> (u16, Value, Response<Body>) {
    let request = lambda_http::request::from_str(&event.to_string()).unwrap();
    let response = handle(&ctx.app, request).await;
    let body = match response.body() {
        Body::Text(t) => serde_json::from_str(t).unwrap(),
        other => panic!("text body expected, got {other:?}"),
    };
    testkit::leaks::assert_clean(&format!("{body} {:?}", response.headers()));
    (response.status().as_u16(), body, response)
}

pub(crate) async fn send_alert(
    ctx: &Ctx,
    resource: &str,
    body: &[u8],
    query: &str,
) -> (u16, Value, Response<Body>) {
    send(ctx, sentry_hook_event(&ctx.secret, resource, body, query)).await
}

/// A signed `event_alert` with `body`: the status, the answer and `Sentry-Hook-Error` (empty
/// when absent).
pub(crate) async fn fire_event_alert(ctx: &Ctx, body: &[u8]) -> (u16, Value, String) {
    let (status, body, response) = send_alert(ctx, "event_alert", body, "").await;
    let hook_error = response
        .headers()
        .get("sentry-hook-error")
        .map(|h| h.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, body, hook_error)
}

pub(crate) fn assert_toggle_request(ctx: &Ctx, index: usize, feature_path: &str, enabled: bool) {
    let toggles = ctx.vwo.toggles();
    let t = &toggles[index];
    assert_eq!(t.method, "PATCH");
    assert_eq!(
        t.raw_path,
        format!("/api/v2/accounts/current/environments/production/features/{feature_path}/toggle")
    );
    assert_eq!(t.token.as_deref(), Some(ctx.token.as_str()));
    assert_eq!(t.body, json!({ "isEnabled": enabled }));
    assert!(
        t.query.is_none(),
        "nothing in the query string: {:?}",
        t.query
    );
    assert!(!t.raw_path.contains(&ctx.token));
}

pub(crate) fn critical() -> Vec<u8> {
    sample("sentry/metric_alert.critical.json")
}

/// Fires the critical metric alert ([`critical`]) for [`FLAG_QUERY`]: the answer's status and
/// body, and how long it took.
pub(crate) async fn fire_critical(ctx: &Ctx) -> (u16, Value, Duration) {
    let started = std::time::Instant::now();
    let (status, body, _) = send_alert(ctx, "metric_alert", &critical(), FLAG_QUERY).await;
    (status, body, started.elapsed())
}
