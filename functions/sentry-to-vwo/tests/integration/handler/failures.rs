//! When VWO or Parameter Store fail: VWO retried within the budget and never slept on, secrets cached, re-read after a rejection and rotated mid-stream; no token leaked, no memory spike.

use super::*;

#[tokio::test(flavor = "multi_thread")]
async fn server_errors_are_retried_within_the_budget() {
    let ctx = setup("retries", &[]).await;
    ctx.vwo.script([
        Script::Status(500, Some(1)),
        Script::Status(504, None),
        Script::Status(502, None),
    ]);
    let (status, body, _) = fire_critical(&ctx).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["toggled"]["attempts"], 4);
    assert_eq!(ctx.vwo.toggles().len(), 4);
    ctx.vwo.assert_off("checkout-new-flow", "production");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_timed_out_attempt_is_retried() {
    let ctx = setup("timeout", &[("VWO_ATTEMPT_TIMEOUT_MS", "500")]).await;
    ctx.vwo.script([Script::Delay(Duration::from_secs(2))]);
    let (status, body, _) = fire_critical(&ctx).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["toggled"]["attempts"], 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn persistent_failure_is_a_502_naming_the_upstream_status_never_the_token() {
    let ctx = setup("fail", &[("VWO_RETRY_BUDGET_MS", "1500")]).await;
    ctx.vwo.script((0..50).map(|_| Script::Status(500, None)));
    let (status, body, raw) = send_alert(&ctx, "metric_alert", &critical(), FLAG_QUERY).await;
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
        let (status, body, _) = fire_critical(&ctx).await;
        assert!(started.elapsed() < Duration::from_secs(1), "{body}");
        assert_eq!(status, 503, "{body}");
        assert_opens(&body["error"], "VWO asked to wait");
        assert_eq!(ctx.vwo.toggles().len(), 1);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_vwo_400_fails_at_once_with_vwos_message() {
    let ctx = setup("vwo-400", &[]).await;
    ctx.vwo.script([Script::Status(400, None)]);
    let (status, body, _) = fire_critical(&ctx).await;
    assert_eq!(status, 502);
    assert_eq!(
        body["error"],
        "VWO failed: HTTP 400 after 1 attempt(s) (not retryable): scripted failure"
    );
    assert_eq!(ctx.vwo.toggles().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_vwo_answers_past_the_budget_are_a_502() {
    let ctx = setup(
        "slow",
        &[
            ("VWO_RETRY_BUDGET_MS", "1500"),
            ("VWO_ATTEMPT_TIMEOUT_MS", "400"),
        ],
    )
    .await;
    ctx.vwo
        .script((0..10).map(|_| Script::Delay(Duration::from_secs(3))));
    let started = std::time::Instant::now();
    let (status, body, _) = fire_critical(&ctx).await;
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
    let ctx = setup(
        "refused",
        &[
            ("VWO_API_BASE_URL", "http://127.0.0.1:9/api/v2"),
            ("VWO_RETRY_BUDGET_MS", "1500"),
        ],
    )
    .await;
    let (status, body, _) = fire_critical(&ctx).await;
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
async fn an_absurd_retry_after_neither_panics_nor_waits() {
    let ctx = setup("retry-after-max", &[]).await;
    ctx.vwo
        .script((0..5).map(|_| Script::Status(500, Some(9_223_372_036_854_775_807))));
    let (status, body, took) = fire_critical(&ctx).await;
    assert_eq!(status, 502, "{body}");
    assert!(took < Duration::from_secs(2), "{took:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_oversized_vwo_answer_is_an_upstream_error_not_a_memory_spike() {
    let ctx = setup("huge-answer", &[("VWO_RETRY_BUDGET_MS", "1500")]).await;
    ctx.vwo
        .script((0..5).map(|_| Script::Huge(6 * 1024 * 1024)));
    let (status, body, _) = fire_critical(&ctx).await;
    assert_eq!(status, 502, "{body}");
    assert_says(&body["error"], "larger than");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rotated_vwo_token_is_reread_after_an_auth_failure() {
    let ctx = setup("rotate-token", &[]).await;
    let moto = moto();
    moto.put_secure_string(&format!("{}/vwo-api-token", ctx.prefix), "rotated-token")
        .await;
    ctx.vwo.accept_tokens(&["rotated-token"]);
    let (status, body, _) = fire_critical(&ctx).await;
    assert_eq!(status, 200, "{body}");
    let tokens = ctx.vwo.toggle_tokens();
    assert_eq!(tokens, [ctx.token.clone(), "rotated-token".to_owned()]);
    assert_eq!(ctx.app.secrets.fetch_count(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_revoked_token_fails_with_502_after_one_reread() {
    let ctx = setup("revoked", &[]).await;
    ctx.vwo.accept_tokens(&["someone-else"]);
    let (status, body, _) = fire_critical(&ctx).await;
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
    let event = sentry_hook_event("new-client-secret", "metric_alert", &critical(), FLAG_QUERY);
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
async fn ssm_down_at_cold_start_is_a_503_with_a_clear_reason() {
    let proxy = testkit::aws_proxy::AwsProxy::start(&moto().endpoint).await;
    proxy.set_down(true);
    let ctx = setup_via("ssm-cold", &[], Some(&proxy.endpoint), &[]).await;
    let (status, body, _) = fire_critical(&ctx).await;
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
    let (status, _, _) = fire_critical(&ctx).await;
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
    let (status, body, took) = fire_critical(&ctx).await;
    assert_eq!(status, 200, "{body}");
    assert!(took < Duration::from_secs(2), "answered in {took:?}");
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
    let (status, body, _) = fire_critical(&ctx).await;
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
    let (status, body, _) = fire_critical(&ctx).await;
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
    let (status, _, _) = fire_critical(&ctx).await;
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
