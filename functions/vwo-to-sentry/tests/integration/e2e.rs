//! End to end: the real `vwo-to-sentry` binary under a Lambda Runtime API stand-in, with SSM and
//! DynamoDB served by moto (reached through `AWS_ENDPOINT_URL_SSM` / `AWS_ENDPOINT_URL_DYNAMODB`),
//! a VWO stand-in and a Sentry stand-in that verifies signatures and the payload schema.

use std::time::Duration;

use serde_json::{json, Value};
use testkit::process::{artifact, FunctionProcess};
use testkit::runtime_api::RuntimeApi;

use crate::response;
use testkit::sentry::FakeSentry;
use testkit::vwo::FakeVwo;

fn webhook(auth: &str, timestamp: i64) -> Value {
    testkit::vwo_hook_event(auth, "feature_flag_updated", timestamp)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_binary_reports_a_flag_change_to_sentry_once() {
    let moto = testkit::moto::shared();
    let prefix = "/e2e/change-tracking";
    let secrets = [
        ("vwo-webhook-secret", "e2e-webhook-secret"),
        ("sentry-signing-secret", "e2e-signing-secret"),
        ("vwo-api-token", "e2e-token"),
    ];
    let secret_vars = moto.put_secrets(prefix, &secrets).await;
    moto.create_table("e2e-state").await;
    let vwo = FakeVwo::start("e2e-token").await;
    vwo.add_flag("checkout-new-flow", true);
    let sentry = FakeSentry::start("e2e-signing-secret").await;
    let api = RuntimeApi::start().await;
    let mut env = api.lambda_env("vwo-to-sentry");
    env.extend(moto.aws_env());
    env.extend(secret_vars);
    env.extend(vwo.env());
    env.extend([
        ("SENTRY_WEBHOOK_URL".to_owned(), sentry.hook_url()),
        ("STATE_TABLE".to_owned(), "e2e-state".to_owned()),
    ]);
    let function = FunctionProcess::spawn(
        &artifact("vwo-to-sentry", env!("CARGO_BIN_EXE_vwo-to-sentry")),
        &env,
    );
    let wait = Duration::from_secs(30);

    let (status, body) = response(
        api.invoke(webhook("e2e-webhook-secret", 1_795_416_000), wait)
            .await,
    );
    assert_eq!(
        (status, &body),
        (200, &json!({"baseline": {"flags": 1}})),
        "{:#?}",
        function.logs()
    );
    vwo.set_enabled("checkout-new-flow", "production", false);
    let event = webhook("e2e-webhook-secret", 1_795_416_060);
    let (status, body) = response(api.invoke(event.clone(), wait).await);
    assert_eq!(status, 200, "{body}");
    let (status, body) = response(api.invoke(event, wait).await);
    assert_eq!((status, body), (200, json!({"unchanged": true})));
    let (status, _) = response(api.invoke(webhook("forged", 1_795_416_060), wait).await);
    assert_eq!(status, 401);

    let changes = sentry.accepted_changes();
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0]["flag"], "checkout-new-flow");
    assert_eq!(changes[0]["action"], "updated");
    assert_eq!(changes[0]["created_at"], "2026-11-23T06:41:00+00:00");
    assert!(sentry.rejections().is_empty(), "{:?}", sentry.rejections());

    let logs = function
        .logs_until(|lines| lines.iter().any(|l| l.contains(r#""outcome":"sent""#)))
        .join("\n");
    assert!(logs.contains(r#""outcome":"sent""#), "{logs}");
    for secret in ["e2e-webhook-secret", "e2e-signing-secret", "e2e-token"] {
        assert!(!logs.contains(secret), "{secret} leaked into logs");
    }
}
