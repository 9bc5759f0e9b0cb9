//! Alerts as Sentry sends them, and the rule's save check: what is switched, restored or answered.

use super::*;

/// A kill switch that turns a flag back on when its alert resolves, in production.
const RESTORING: &[(&str, &str)] = &[
    ("RESTORE_ON_RESOLVE", "true"),
    ("ENABLE_ALLOWED_IN", "production"),
];

#[tokio::test(flavor = "multi_thread")]
async fn a_critical_metric_alert_turns_the_flag_off() {
    let ctx = setup("critical", &[]).await;
    let (status, body, _) = fire_critical(&ctx).await;
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
            // An issue's start is taken note of (for @suspect rules): nothing went wrong, so no
            // Sentry-Hook-Error in the integration's request log.
            None if resource == "issue" => {
                assert!(body["noted"].is_string(), "{file}: {body}");
                assert!(
                    !response.headers().contains_key("sentry-hook-error"),
                    "{file}"
                );
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
    let (_, body, _) = fire_critical(&ctx).await;
    assert_eq!(
        body["ignored"],
        "metric_alert.critical does not toggle (TOGGLE_ON)"
    );
    assert_eq!(ctx.vwo.toggles().len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_resolved_alert_restores_the_flag_when_configured() {
    let ctx = setup("restore", RESTORING).await;
    let (_, body, _) = fire_critical(&ctx).await;
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
        &critical(),
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
