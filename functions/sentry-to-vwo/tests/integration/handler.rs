//! The kill switch's handler, called directly, with secrets in moto's SSM and a VWO stand-in.
//! Every test asserts what Sentry would see (status, body, headers) and what VWO received.

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
async fn setup_via(
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

fn assert_toggle_request(ctx: &Ctx, index: usize, feature_path: &str, enabled: bool) {
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

#[tokio::test(flavor = "multi_thread")]
async fn a_critical_metric_alert_turns_the_flag_off() {
    let ctx = setup("critical", &[]).await;
    let (status, body, _) = send_alert(
        &ctx,
        "metric_alert",
        &sample("sentry/metric_alert.critical.json"),
        FLAG_QUERY,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"toggled": {"account": "current", "environment": "production", "feature": "checkout-new-flow",
            "isEnabled": false, "restore": false, "vwoStatus": 200, "attempts": 1}})
    );
    assert_eq!(ctx.vwo.toggles().len(), 1);
    assert_toggle_request(&ctx, 0, "checkout-new-flow", false);
    ctx.vwo.assert_off("checkout-new-flow", "production");
    ctx.vwo.assert_on("checkout-new-flow", "staging");
}

#[tokio::test(flavor = "multi_thread")]
async fn every_sample_event_gets_its_documented_outcome() {
    let ctx = setup("samples", &[]).await;
    let cases = [
        ("metric_alert", "metric_alert.critical.json", Some(false)),
        ("metric_alert", "metric_alert.warning.json", Some(false)),
        ("event_alert", "event_alert.triggered.json", Some(false)),
        ("metric_alert", "metric_alert.resolved.json", None),
        ("issue", "issue.created.json", None),
        ("error", "error.created.json", None),
        ("installation", "installation.created.json", None),
    ];
    let mut expected_toggles = 0;
    for (resource, file, toggles) in cases {
        let (status, body, response) = send_alert(
            &ctx,
            resource,
            &sample(&format!("sentry/{file}")),
            FLAG_QUERY,
        )
        .await;
        assert_eq!(status, 200, "{file}: {body}");
        match toggles {
            Some(enabled) => {
                assert_eq!(body["toggled"]["isEnabled"], enabled, "{file}");
                expected_toggles += 1;
            }
            None => {
                assert!(body["ignored"].is_string(), "{file}: {body}");
                assert!(
                    response.headers().contains_key("sentry-hook-error"),
                    "{file}"
                );
            }
        }
        assert_eq!(ctx.vwo.toggles().len(), expected_toggles, "{file}");
    }
    // Warm invocations read no secrets: one GetParameters call, at cold start.
    assert_eq!(ctx.app.secrets.fetch_count(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn issue_and_error_created_toggle_when_enabled_in_configuration() {
    let ctx = setup("issue-on", &[("TOGGLE_ON", "issue.created,error.created")]).await;
    for (resource, file) in [
        ("issue", "issue.created.json"),
        ("error", "error.created.json"),
    ] {
        let (status, body, _) = send_alert(
            &ctx,
            resource,
            &sample(&format!("sentry/{file}")),
            FLAG_QUERY,
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(body["toggled"]["feature"], "checkout-new-flow", "{file}");
    }
    // metric_alert.critical is no longer in TOGGLE_ON.
    let (_, body, _) = send_alert(
        &ctx,
        "metric_alert",
        &sample("sentry/metric_alert.critical.json"),
        FLAG_QUERY,
    )
    .await;
    assert_eq!(
        body["ignored"],
        "metric_alert.critical does not toggle (TOGGLE_ON)"
    );
    assert_eq!(ctx.vwo.toggles().len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_resolved_alert_restores_the_flag_when_configured() {
    let vars = [
        ("RESTORE_ON_RESOLVE", "true"),
        ("ENABLE_ALLOWED_IN", "production"),
    ];
    let ctx = setup("restore", &vars).await;
    let (_, body, _) = send_alert(
        &ctx,
        "metric_alert",
        &sample("sentry/metric_alert.critical.json"),
        FLAG_QUERY,
    )
    .await;
    assert_eq!(body["toggled"]["isEnabled"], false);
    let (status, body, _) = send_alert(
        &ctx,
        "metric_alert",
        &sample("sentry/metric_alert.resolved.json"),
        FLAG_QUERY,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["toggled"]["isEnabled"], true);
    assert_eq!(body["toggled"]["restore"], true);
    assert_toggle_request(&ctx, 1, "checkout-new-flow", true);
    ctx.vwo.assert_on("checkout-new-flow", "production");
}

#[tokio::test(flavor = "multi_thread")]
async fn alert_rule_settings_override_the_query_string() {
    let ctx = setup("settings", &[]).await;
    let body = json!({"action": "triggered", "data": {"triggered_rule": "r",
        "issue_alert": {"title": "t", "settings": [{"name": "feature", "value": "search-v2"}]}}});
    let (status, response, _) =
        send_alert(&ctx, "event_alert", body.to_string().as_bytes(), FLAG_QUERY).await;
    assert_eq!(status, 200, "{response}");
    assert_eq!(response["toggled"]["feature"], "search-v2");
    assert_toggle_request(&ctx, 0, "search-v2", false);
    ctx.vwo.assert_on("checkout-new-flow", "production");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rule_named_in_the_url_is_switched_alone() {
    let ctx = setup("url-rule", &[]).await;
    let (status, body, _) = send_alert(
        &ctx,
        "metric_alert",
        &sample("sentry/metric_alert.critical.json"),
        &format!("{FLAG_QUERY}&rule=rolloutRule1"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["toggled"]["rule"], "rolloutRule1");
    let toggles = ctx.vwo.toggles();
    assert_eq!(
        toggles[0].raw_path,
        "/api/v2/accounts/current/environments/production/features/checkout-new-flow/rules/rolloutRule1/toggle"
    );
    // the flag itself stays on
    ctx.vwo.assert_on("checkout-new-flow", "production");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_base64_body_is_verified_and_handled() {
    let ctx = setup("base64", &[]).await;
    let body = sample("sentry/metric_alert.critical.json");
    let event = function_url_event(
        "POST",
        FLAG_QUERY,
        &[
            ("content-type", "application/json"),
            ("sentry-hook-resource", "metric_alert"),
            ("sentry-hook-timestamp", &now_secs().to_string()),
            ("sentry-hook-signature", &hmac_hex(&ctx.secret, &body)),
        ],
        &body,
        true,
    );
    let (status, response, _) = send(&ctx, event).await;
    assert_eq!(status, 200, "{response}");
    assert_toggle_request(&ctx, 0, "checkout-new-flow", false);
}

/// Request headers as (name, value) pairs.
#[tokio::test(flavor = "multi_thread")]
async fn unicode_flag_keys_are_percent_encoded_in_the_vwo_path() {
    let ctx = setup("unicode", &[]).await;
    ctx.vwo.add_flag("café-ß", true);
    let query = "feature=caf%C3%A9-%C3%9F&environment=production";
    let body = br#"{"action":"critical","data":{}}"#;
    let (status, response, _) = send_alert(&ctx, "metric_alert", body, query).await;
    assert_eq!(status, 200, "{response}");
    assert_eq!(response["toggled"]["feature"], "café-ß");
    assert_toggle_request(&ctx, 0, "caf%C3%A9-%C3%9F", false);
    ctx.vwo.assert_off("café-ß", "production");
}

#[tokio::test(flavor = "multi_thread")]
async fn server_errors_are_retried_within_the_budget() {
    let ctx = setup("retries", &[]).await;
    ctx.vwo.script([
        Script::Status(500, Some(1)),
        Script::Status(504, None),
        Script::Status(502, None),
    ]);
    let (status, body, _) = send_alert(
        &ctx,
        "metric_alert",
        &sample("sentry/metric_alert.critical.json"),
        FLAG_QUERY,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["toggled"]["attempts"], 4);
    assert_eq!(ctx.vwo.toggles().len(), 4);
    ctx.vwo.assert_off("checkout-new-flow", "production");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_timed_out_attempt_is_retried() {
    let ctx = setup("timeout", &[("VWO_ATTEMPT_TIMEOUT_MS", "500")]).await;
    ctx.vwo.script([Script::Delay(Duration::from_secs(2))]);
    let (status, body, _) = send_alert(
        &ctx,
        "metric_alert",
        &sample("sentry/metric_alert.critical.json"),
        FLAG_QUERY,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["toggled"]["attempts"], 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn persistent_failure_is_a_502_naming_the_upstream_status_never_the_token() {
    let ctx = setup("fail", &[("VWO_RETRY_BUDGET_MS", "1500")]).await;
    ctx.vwo.script((0..50).map(|_| Script::Status(500, None)));
    let (status, body, raw) = send_alert(
        &ctx,
        "metric_alert",
        &sample("sentry/metric_alert.critical.json"),
        FLAG_QUERY,
    )
    .await;
    assert_eq!(status, 502);
    assert_opens(&body["error"], "VWO failed: HTTP 500 after ");
    assert!(ctx.vwo.toggles().len() >= 2, "retried");
    let everything = format!("{body} {:?}", raw.headers());
    assert!(!everything.contains(&ctx.token));
    assert!(!everything.contains(&ctx.secret));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_429_or_503_ends_the_attempt_at_once_never_sleeping_inside_the_invocation() {
    // VWO: after a 429 or a 503, wait at least 60 s. No invocation sleeps that long.
    for (status_from_vwo, retry_after) in [(429, Some(60)), (429, None), (503, None)] {
        let name = format!("ratelimit-{status_from_vwo}-{}", retry_after.unwrap_or(0));
        let ctx = setup(&name, &[]).await;
        ctx.vwo
            .script([Script::Status(status_from_vwo, retry_after)]);
        let started = std::time::Instant::now();
        let (status, body, _) = send_alert(&ctx, "metric_alert", &critical(), FLAG_QUERY).await;
        assert!(started.elapsed() < Duration::from_secs(1), "{body}");
        assert_eq!(status, 503, "{body}");
        assert_opens(&body["error"], "VWO asked to wait");
        assert_eq!(ctx.vwo.toggles().len(), 1);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rotated_vwo_token_is_reread_after_an_auth_failure() {
    let ctx = setup("rotate-token", &[]).await;
    let moto = moto();
    moto.put_secure_string(&format!("{}/vwo-api-token", ctx.prefix), "rotated-token")
        .await;
    ctx.vwo.accept_tokens(&["rotated-token"]);
    let (status, body, _) = send_alert(
        &ctx,
        "metric_alert",
        &sample("sentry/metric_alert.critical.json"),
        FLAG_QUERY,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let tokens: Vec<_> = ctx
        .vwo
        .toggles()
        .into_iter()
        .map(|t| t.token.unwrap())
        .collect();
    assert_eq!(tokens, [ctx.token.clone(), "rotated-token".to_owned()]);
    assert_eq!(ctx.app.secrets.fetch_count(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_revoked_token_fails_with_502_after_one_reread() {
    let ctx = setup("revoked", &[]).await;
    ctx.vwo.accept_tokens(&["someone-else"]);
    let (status, body, _) = send_alert(
        &ctx,
        "metric_alert",
        &sample("sentry/metric_alert.critical.json"),
        FLAG_QUERY,
    )
    .await;
    assert_eq!(status, 502);
    assert_says(&body["error"], "HTTP 403");
    assert_eq!(ctx.vwo.toggles().len(), 1);
    assert_eq!(ctx.app.secrets.fetch_count(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rotated_client_secret_is_picked_up_on_the_first_mismatch() {
    let ctx = setup("rotate-secret", &[]).await;
    moto()
        .put_secure_string(
            &format!("{}/sentry-client-secret", ctx.prefix),
            "new-client-secret",
        )
        .await;
    let event = sentry_hook_event(
        "new-client-secret",
        "metric_alert",
        &sample("sentry/metric_alert.critical.json"),
        FLAG_QUERY,
    );
    let (status, body, _) = send(&ctx, event).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(ctx.vwo.toggles().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_secrets_answer_503_so_sentry_retries() {
    let config = Config::from_vars(&|n: &str| match n {
        "SENTRY_CLIENT_SECRET_PARAM" => Some("/absent/secret".into()),
        "VWO_API_TOKEN_PARAM" => Some("/absent/token".into()),
        _ => None,
    })
    .unwrap();
    let aws = bridge_platform::aws::aws_config().await;
    let app = App::new(config, Arc::new(StaticParameters::default()), &aws).unwrap();
    app.warm_up().await;
    let body = sample("sentry/metric_alert.critical.json");
    let event = sentry_hook_event("whatever", "metric_alert", &body, FLAG_QUERY);
    let response = handle(
        &app,
        lambda_http::request::from_str(&event.to_string()).unwrap(),
    )
    .await;
    assert_eq!(response.status(), 503);
    let Body::Text(text) = response.body() else {
        panic!()
    };
    // The reason is generic; which parameter is missing is in the log.
    assert!(text.contains("secrets unavailable"), "{text}");
    assert!(!text.contains("/absent/secret"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn saving_an_alert_rule_checks_its_settings_and_that_vwo_has_the_flag() {
    let ctx = setup("rule-action", &[]).await;
    let request = |fields: Value, secret: &str| testkit::rule_action_event(secret, fields);
    let fields = |feature: &str, rule: Option<&str>| {
        let mut fields = vec![
            json!({"name": "feature", "value": feature}),
            json!({"name": "environment", "value": "production"}),
        ];
        if let Some(rule) = rule {
            fields.push(json!({"name": "rule", "value": rule}));
        }
        Value::Array(fields)
    };
    let good = fields("search-v2", None);
    let (status, body, _) = send(&ctx, request(good.clone(), &ctx.secret)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["message"],
        "When this alert fires, VWO flag search-v2 in production will be turned off."
    );
    // One read, never a toggle.
    let asked: Vec<(String, String)> = ctx
        .vwo
        .requests()
        .iter()
        .map(|r| (r.method.clone(), r.raw_path.clone()))
        .collect();
    assert_eq!(
        asked,
        [(
            "GET".to_owned(),
            "/api/v2/accounts/current/environments/production/features/search-v2/rules".to_owned()
        )]
    );
    // A typo is found when the rule is saved, not when the alert fires.
    let (status, body, _) = send(&ctx, request(fields("serch-v2", None), &ctx.secret)).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["message"],
        "bad request: VWO has no flag serch-v2 in environment production (VWO: Feature not found); check the key or id in VWO"
    );
    let (status, body, _) = send(
        &ctx,
        request(fields("search-v2", Some("no-such-rule")), &ctx.secret),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_opens(&body["message"], "bad request: VWO has no rule no-such-rule of flag search-v2 in environment production (VWO: Rule not found)");
    let (status, body, _) = send(
        &ctx,
        request(fields("search-v2", Some("rolloutRule1")), &ctx.secret),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // VWO unavailable: the save goes through, saying it was not checked.
    ctx.vwo.script([Script::Status(503, Some(60))]);
    let (status, body, _) = send(&ctx, request(good.clone(), &ctx.secret)).await;
    assert_eq!(status, 200, "{body}");
    assert_says(&body["message"], "saved unchecked");
    let before = ctx.vwo.requests().len();
    // Bad settings and forged signatures never reach VWO.
    let (status, body, _) = send(
        &ctx,
        request(json!([{"name": "feature", "value": "x"}]), &ctx.secret),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let (status, _, _) = send(&ctx, request(good, "forged")).await;
    assert_eq!(status, 401);
    assert_eq!(ctx.vwo.requests().len(), before);
    assert!(ctx.vwo.toggles().is_empty());
}

fn critical() -> Vec<u8> {
    sample("sentry/metric_alert.critical.json")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_vwo_400_fails_at_once_with_vwos_message() {
    let ctx = setup("vwo-400", &[]).await;
    ctx.vwo.script([Script::Status(400, None)]);
    let (status, body, _) = send_alert(&ctx, "metric_alert", &critical(), FLAG_QUERY).await;
    assert_eq!(status, 502);
    assert_eq!(
        body["error"],
        "VWO failed: HTTP 400 after 1 attempt(s) (not retryable): scripted failure"
    );
    assert_eq!(ctx.vwo.toggles().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_vwo_answers_past_the_budget_are_a_502() {
    let vars = [
        ("VWO_RETRY_BUDGET_MS", "1500"),
        ("VWO_ATTEMPT_TIMEOUT_MS", "400"),
    ];
    let ctx = setup("slow", &vars).await;
    ctx.vwo
        .script((0..10).map(|_| Script::Delay(Duration::from_secs(3))));
    let started = std::time::Instant::now();
    let (status, body, _) = send_alert(&ctx, "metric_alert", &critical(), FLAG_QUERY).await;
    assert_eq!(status, 502, "{body}");
    assert_opens(&body["error"], "VWO failed: timed out after ");
    let attempts = ctx.vwo.toggles().len();
    assert!(
        (2..=4).contains(&attempts),
        "{attempts} attempts within 1.5 s"
    );
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "the budget bounds the call"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_connections_are_retried_then_a_502() {
    let vars = [
        ("VWO_API_BASE_URL", "http://127.0.0.1:9/api/v2"),
        ("VWO_RETRY_BUDGET_MS", "1500"),
    ];
    let ctx = setup("refused", &vars).await;
    let (status, body, _) = send_alert(&ctx, "metric_alert", &critical(), FLAG_QUERY).await;
    assert_eq!(status, 502, "{body}");
    let message = body["error"].as_str().unwrap();
    assert!(
        message.starts_with("VWO failed: connection failed after "),
        "{message}"
    );
    let attempts: u32 = message
        .split("after ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(attempts >= 2, "{message}");
}

#[tokio::test(flavor = "multi_thread")]
async fn ssm_down_at_cold_start_is_a_503_with_a_clear_reason() {
    let proxy = testkit::aws_proxy::AwsProxy::start(&moto().endpoint).await;
    proxy.set_down(true);
    let ctx = setup_via("ssm-cold", &[], Some(&proxy.endpoint), &[]).await;
    let (status, body, _) = send_alert(&ctx, "metric_alert", &critical(), FLAG_QUERY).await;
    assert_eq!(status, 503, "{body}");
    // A short, generic reason: the SDK's error (account, role, ARNs) stays in the log.
    assert_eq!(
        body["error"],
        "secrets unavailable; details are in the function's log"
    );
    assert!(ctx.vwo.requests().is_empty());
    // When Parameter Store is back, a request after the failure back-off works without a restart.
    proxy.set_down(false);
    tokio::time::sleep(bridge_platform::secrets::FAILURE_BACKOFF).await;
    let (status, _, _) = send_alert(&ctx, "metric_alert", &critical(), FLAG_QUERY).await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn forged_requests_while_ssm_fails_cause_no_ssm_calls() {
    let proxy = testkit::aws_proxy::AwsProxy::start(&moto().endpoint).await;
    proxy.set_down(true);
    let ctx = setup_via("ssm-forged", &[], Some(&proxy.endpoint), &[]).await;
    let after_cold_start = proxy.calls("AmazonSSM.GetParameters");
    for _ in 0..20 {
        let forged = sentry_hook_event("forged", "metric_alert", &critical(), FLAG_QUERY);
        let (status, _, _) = send(&ctx, forged).await;
        assert_eq!(status, 503);
    }
    assert_eq!(
        proxy.calls("AmazonSSM.GetParameters"),
        after_cold_start,
        "no read while the last one failed less than 5 s ago"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn ssm_hanging_after_the_ttl_serves_the_cached_secrets_at_once() {
    let proxy = testkit::aws_proxy::AwsProxy::start(&moto().endpoint).await;
    let ctx = setup_via(
        "ssm-hang-warm",
        &[("SECRET_TTL_SECS", "0")],
        Some(&proxy.endpoint),
        &[],
    )
    .await;
    proxy.set_hang(true);
    let started = std::time::Instant::now();
    let (status, body, _) = send_alert(&ctx, "metric_alert", &critical(), FLAG_QUERY).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "answered in {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn ssm_hanging_at_cold_start_still_becomes_ready_and_answers_503() {
    let proxy = testkit::aws_proxy::AwsProxy::start(&moto().endpoint).await;
    proxy.set_hang(true);
    let started = std::time::Instant::now();
    let ctx = setup_via("ssm-hang-cold", &[], Some(&proxy.endpoint), &[]).await;
    let ready = started.elapsed();
    assert!(
        ready < Duration::from_secs(6),
        "ready after {ready:?}: within Lambda's 10 s init limit"
    );
    let started = std::time::Instant::now();
    let (status, body, _) = send_alert(&ctx, "metric_alert", &critical(), FLAG_QUERY).await;
    assert_eq!(status, 503, "{body}");
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[tokio::test(flavor = "multi_thread")]
async fn ssm_down_when_warm_keeps_using_the_cached_secrets() {
    let proxy = testkit::aws_proxy::AwsProxy::start(&moto().endpoint).await;
    // TTL 0: every request tries to re-read.
    let ctx = setup_via(
        "ssm-warm",
        &[("SECRET_TTL_SECS", "0")],
        Some(&proxy.endpoint),
        &[],
    )
    .await;
    proxy.set_down(true);
    let (status, body, _) = send_alert(&ctx, "metric_alert", &critical(), FLAG_QUERY).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        proxy.calls("AmazonSSM.GetParameters") >= 2,
        "it tried to re-read"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn throttled_ssm_is_retried_with_back_off() {
    let proxy = testkit::aws_proxy::AwsProxy::start(&moto().endpoint).await;
    proxy.throttle_next(2);
    let ctx = setup_via("ssm-throttled", &[], Some(&proxy.endpoint), &[]).await;
    assert_eq!(
        proxy.calls("AmazonSSM.GetParameters"),
        3,
        "two throttled attempts, then success"
    );
    assert_eq!(ctx.app.secrets.fetch_count(), 1, "one logical read");
    let (status, _, _) = send_alert(&ctx, "metric_alert", &critical(), FLAG_QUERY).await;
    assert_eq!(status, 200);
}

/// Sends `count` alerts 50 ms apart, calling `rotate` before alert `at`; every alert must toggle.
async fn stream_with_rotation(
    ctx: &Ctx,
    count: usize,
    at: usize,
    rotate: impl AsyncFnOnce(),
    signing: impl Fn(usize) -> String,
) {
    let mut rotate = Some(rotate);
    for i in 0..count {
        if i == at {
            if let Some(r) = rotate.take() {
                r().await;
            }
        }
        let event = sentry_hook_event(&signing(i), "metric_alert", &critical(), FLAG_QUERY);
        let (status, body, _) = send(ctx, event).await;
        assert_eq!(status, 200, "alert {i}: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn rotating_the_client_secret_during_a_stream_fails_no_alert() {
    let ctx = setup("stream-secret", &[]).await;
    let name = format!("{}/sentry-client-secret", ctx.prefix);
    let old = ctx.secret.clone();
    stream_with_rotation(
        &ctx,
        20,
        10,
        async || moto().put_secure_string(&name, "new-client-secret").await,
        |i| {
            if i < 10 {
                old.clone()
            } else {
                "new-client-secret".to_owned()
            }
        },
    )
    .await;
    assert_eq!(ctx.vwo.toggles().len(), 20);
}

#[tokio::test(flavor = "multi_thread")]
async fn rotating_the_vwo_token_during_a_stream_fails_no_alert() {
    let ctx = setup("stream-token", &[]).await;
    let name = format!("{}/vwo-api-token", ctx.prefix);
    let secret = ctx.secret.clone();
    stream_with_rotation(
        &ctx,
        20,
        10,
        async || {
            moto().put_secure_string(&name, "rotated-token").await;
            ctx.vwo.accept_tokens(&["rotated-token"]);
        },
        |_| secret.clone(),
    )
    .await;
    let tokens: Vec<String> = ctx
        .vwo
        .toggles()
        .into_iter()
        .filter_map(|t| t.token)
        .collect();
    assert_eq!(
        tokens.iter().filter(|t| *t == "rotated-token").count(),
        10,
        "the new token from the rotation on"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unsigned_resource_header_is_never_logged() {
    let ctx = setup("unsigned-resource", &[]).await;
    // Registered like a secret: the leak watcher fails the test if it reaches any log line.
    testkit::leaks::watch(&["unsigned-resource-marker"]);
    let mut forged = sentry_hook_event("not-the-secret", "metric_alert", &critical(), FLAG_QUERY);
    forged["headers"]["sentry-hook-resource"] = json!("unsigned-resource-marker");
    let (status, _, _) = send(&ctx, forged).await;
    assert_eq!(status, 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_absurd_retry_after_neither_panics_nor_waits() {
    let ctx = setup("retry-after-max", &[]).await;
    ctx.vwo
        .script((0..5).map(|_| Script::Status(500, Some(9_223_372_036_854_775_807))));
    let started = std::time::Instant::now();
    let (status, body, _) = send_alert(&ctx, "metric_alert", &critical(), FLAG_QUERY).await;
    assert_eq!(status, 502, "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_oversized_vwo_answer_is_an_upstream_error_not_a_memory_spike() {
    let ctx = setup("huge-answer", &[("VWO_RETRY_BUDGET_MS", "1500")]).await;
    ctx.vwo
        .script((0..5).map(|_| Script::Huge(6 * 1024 * 1024)));
    let (status, body, _) = send_alert(&ctx, "metric_alert", &critical(), FLAG_QUERY).await;
    assert_eq!(status, 502, "{body}");
    assert_says(&body["error"], "larger than");
}
