//! End to end: the real `sentry-to-vwo` binary under a Lambda Runtime API stand-in, reading its
//! secrets from moto's SSM through the AWS SDK's standard chain (`AWS_ENDPOINT_URL_SSM`), and
//! calling a VWO stand-in on loopback.

use std::time::Duration;
use testkit::answers::{assert_opens, assert_says};

use serde_json::{json, Value};
use testkit::moto::Moto;
use testkit::process::{artifact, FunctionProcess};
use testkit::runtime_api::{Outcome, RuntimeApi};

use crate::response;
use testkit::vwo::FakeVwo;
use testkit::{sample, sentry_hook_event};

const QUERY: &str = "feature=checkout-new-flow&environment=production";

struct Stack {
    api: RuntimeApi,
    vwo: FakeVwo,
    function: FunctionProcess,
    _moto: &'static Moto,
}

async fn stack(name: &str, extra: &[(&str, &str)]) -> Stack {
    let moto = testkit::moto::shared();
    let prefix = format!("/e2e/{name}");
    let secrets = [
        ("sentry-client-secret", "e2e-client-secret"),
        ("vwo-api-token", "e2e-vwo-token"),
    ];
    let secret_vars = moto.put_secrets(&prefix, &secrets).await;
    let vwo = FakeVwo::start("e2e-vwo-token").await;
    vwo.add_flag("checkout-new-flow", true);
    let api = RuntimeApi::start().await;
    let mut env = api.lambda_env("sentry-to-vwo");
    env.extend(moto.aws_env());
    env.extend(secret_vars);
    env.extend([
        ("VWO_API_BASE_URL".to_owned(), vwo.base_url()),
        ("VWO_SETTINGS_BASE_URL".to_owned(), vwo.settings_base_url()),
    ]);
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let function = FunctionProcess::spawn(
        &artifact("sentry-to-vwo", env!("CARGO_BIN_EXE_sentry-to-vwo")),
        &env,
    );
    Stack {
        api,
        vwo,
        function,
        _moto: moto,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_binary_toggles_a_flag_for_a_signed_alert() {
    let s = stack("toggle", &[]).await;
    let event = sentry_hook_event(
        "e2e-client-secret",
        "metric_alert",
        &sample("sentry/metric_alert.critical.json"),
        QUERY,
    );
    let (status, body) = response(s.api.invoke(event, Duration::from_secs(30)).await);
    assert_eq!(status, 200, "{body}\n{:#?}", s.function.logs());
    assert_eq!(body["toggled"]["feature"], "checkout-new-flow");
    s.vwo.assert_off("checkout-new-flow", "production");
    let toggles = s.vwo.toggles();
    assert_eq!(toggles.len(), 1);
    assert_eq!(toggles[0].token.as_deref(), Some("e2e-vwo-token"));
    assert_eq!(toggles[0].body, json!({"isEnabled": false}));

    // A second (warm) alert with a bad signature is refused and reaches no one.
    let forged = sentry_hook_event(
        "not-the-secret",
        "metric_alert",
        &sample("sentry/metric_alert.critical.json"),
        QUERY,
    );
    let (status, body) = response(s.api.invoke(forged, Duration::from_secs(30)).await);
    assert_eq!(status, 401, "{body}");
    assert_eq!(s.vwo.toggles().len(), 1);

    // One structured line per invocation, with the facts an operator needs and no secrets.
    let handled_lines = |lines: &[String]| {
        lines
            .iter()
            .filter(|l| l.contains(r#""message":"sentry webhook handled""#))
            .count()
    };
    let logs = s.function.logs_until(|lines| handled_lines(lines) >= 2);
    let handled: Vec<Value> = logs
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["message"] == "sentry webhook handled")
        .collect();
    assert_eq!(handled.len(), 2, "{logs:#?}");
    assert_eq!(handled[0]["outcome"], "toggled");
    assert_eq!(handled[0]["resource"], "metric_alert");
    assert_eq!(handled[0]["action"], "critical");
    assert_eq!(handled[0]["rule"], "Checkout p95 latency");
    assert_eq!(handled[0]["feature"], "checkout-new-flow");
    assert_eq!(handled[0]["environment"], "production");
    assert_eq!(handled[0]["vwo_status"], 200);
    assert_eq!(handled[1]["outcome"], "rejected");
    let all = logs.join("\n");
    for secret in ["e2e-client-secret", "e2e-vwo-token"] {
        assert!(!all.contains(secret), "{secret} leaked into logs");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_configuration_fails_the_cold_start_with_one_clear_message() {
    let mut s = stack("bad-config", &[("TOGGLE_ON", "issue.resolved")]).await;
    let error = s
        .api
        .init_error(Duration::from_secs(30))
        .await
        .expect("an init error is reported");
    assert_eq!(error["errorType"], "Runtime.ConfigError");
    assert_says(&error["errorMessage"], "TOGGLE_ON");
    for _ in 0..50 {
        if s.function.exited() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(s.function.exited(), "the process exits after an init error");
    assert!(s.vwo.requests().is_empty());
}

/// Does what Lambda's SQS event source mapping does for the worker binary: receives the queue's
/// next message (waiting up to `wait_secs` for it) and invokes the worker with it; the worker
/// must report no failed item.
async fn hand_over(
    moto: &Moto,
    queue: &str,
    api: &RuntimeApi,
    worker: &FunctionProcess,
    wait_secs: u64,
) {
    let received = moto
        .call(
            "AmazonSQS.ReceiveMessage",
            json!({"QueueUrl": queue, "MaxNumberOfMessages": 1, "WaitTimeSeconds": wait_secs,
                   "MessageSystemAttributeNames": ["All"]}),
        )
        .await;
    let message = &received["Messages"][0];
    let sqs_event = json!({"Records": [{
        "messageId": message["MessageId"], "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"], "attributes": message["Attributes"],
        "messageAttributes": {}, "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:e2e-toggles", "awsRegion": "us-east-1"}]});
    let outcome = api.invoke(sqs_event, Duration::from_secs(30)).await;
    let Some(Outcome::Response(batch)) = outcome else {
        panic!("worker error: {outcome:?}\n{:#?}", worker.logs())
    };
    assert_eq!(
        batch["batchItemFailures"],
        json!([]),
        "{:#?}",
        worker.logs()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_kill_vwo_cannot_take_now_is_queued_and_the_worker_binary_completes_it() {
    let moto = testkit::moto::shared();
    moto.create_table("e2e-kill-state").await;
    let queue = moto.create_queue("e2e-toggles").await;
    let dlq = moto.create_queue("e2e-toggles-dlq").await;
    let aws = [
        ("AWS_ENDPOINT_URL", moto.endpoint.as_str()),
        ("STATE_TABLE", "e2e-kill-state"),
        ("TOGGLE_QUEUE_URL", queue.as_str()),
    ];
    let s = stack("durable", &aws).await;
    // VWO is too slow for the fast path: Sentry gets its 202 at once.
    s.vwo
        .script([testkit::vwo::Script::Delay(Duration::from_secs(3))]);
    let event = sentry_hook_event(
        "e2e-client-secret",
        "metric_alert",
        &sample("sentry/metric_alert.critical.json"),
        QUERY,
    );
    let started = std::time::Instant::now();
    let (status, body) = response(s.api.invoke(event, Duration::from_secs(30)).await);
    assert_eq!(status, 202, "{body}\n{:#?}", s.function.logs());
    // Sentry got its answer before VWO answered the toggle (3 s): the kill switch did not wait
    // for VWO. (How fast the answer is, is measured by the lifecycle bench, not here.)
    if std::env::var_os("BRIDGE_E2E_RUNNER").is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "answered after {:?}",
            started.elapsed()
        );
    }

    // The worker binary, fed the queue's message as Lambda's event source mapping would.
    let api = RuntimeApi::start().await;
    let mut env = api.lambda_env("toggle-worker");
    env.extend(
        [
            ("AWS_ENDPOINT_URL", moto.endpoint.as_str()),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("VWO_API_TOKEN_PARAM", "/e2e/durable/vwo-api-token"),
            ("VWO_API_BASE_URL", &s.vwo.base_url()),
            ("STATE_TABLE", "e2e-kill-state"),
            ("TOGGLE_QUEUE_URL", &queue),
            ("TOGGLE_DLQ_URL", &dlq),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    let worker = FunctionProcess::spawn(
        &artifact("toggle-worker", env!("CARGO_BIN_EXE_toggle-worker")),
        &env,
    );
    // Wait for the slow fast-path request to finish at VWO, then hand the job over.
    tokio::time::sleep(Duration::from_secs(3)).await;
    hand_over(moto, &queue, &api, &worker, 5).await;
    s.vwo.assert_off("checkout-new-flow", "production");
    let logs = worker
        .logs_until(|lines| lines.iter().any(|l| l.contains("queued toggle applied")))
        .join("\n");
    assert!(logs.contains("queued toggle applied"), "{logs}");
    assert!(
        !logs.contains("e2e-vwo-token"),
        "the token leaked into logs"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_query_strings_are_a_400_and_the_binary_keeps_serving() {
    let s = stack("hostile-query", &[]).await;
    let body = sample("sentry/metric_alert.critical.json");
    let long = format!("feature={}", "a".repeat(70 * 1024));
    for query in ["feature=\"<>", long.as_str()] {
        // Unauthenticated, as anyone on the internet could send it.
        let mut event = sentry_hook_event("not-the-secret", "metric_alert", &body, "");
        event["rawQueryString"] = json!(query);
        let outcome = s
            .api
            .invoke(event, Duration::from_secs(30))
            .await
            .expect("the function answered");
        let (status, answer) = outcome.http();
        assert_eq!(status, 400, "{:.60}: {answer}", query);
        assert_eq!(
            answer["error"],
            "bad request: the query string is not a valid URI query"
        );
    }
    // Still alive: a real alert toggles.
    let event = sentry_hook_event("e2e-client-secret", "metric_alert", &body, QUERY);
    let (status, answer) = response(s.api.invoke(event, Duration::from_secs(30)).await);
    assert_eq!(status, 200, "{answer}");
    let logs = s.function.logs().join("\n");
    assert!(!logs.contains("panicked"), "{logs}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_binary_answers_a_test_notification_without_switching_and_logs_it_as_tested() {
    let s = stack("test-notification", &[]).await;
    let test = sentry_hook_event(
        "e2e-client-secret",
        "event_alert",
        &sample("sentry/event_alert.test_notification.json"),
        QUERY,
    );
    let (status, body) = response(s.api.invoke(test, Duration::from_secs(30)).await);
    assert_eq!(status, 200, "{body}\n{:#?}", s.function.logs());
    assert_eq!(
        body["tested"]["message"],
        "test notification: would turn checkout-new-flow off in production"
    );
    assert!(s.vwo.requests().is_empty());
    s.vwo.assert_on("checkout-new-flow", "production");

    // The log line and the metric say `tested`, apart from real outcomes.
    let logs = s.function.logs_until(|lines| {
        lines
            .iter()
            .any(|l| l.contains(r#""message":"sentry webhook handled""#))
            && lines.iter().any(|l| l.contains(r#""Invocations":1"#))
    });
    let lines: Vec<Value> = logs
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .collect();
    let handled = lines
        .iter()
        .find(|v| v["message"] == "sentry webhook handled")
        .expect("a handled line");
    assert_eq!(handled["outcome"], "tested", "{handled}");
    assert_eq!(handled["feature"], "checkout-new-flow");
    assert_says(&handled["detail"], "alert rule id -1");
    let metric = lines
        .iter()
        .find(|v| v["Invocations"] == 1)
        .expect("a metric line");
    assert_eq!(metric["outcome"], "tested");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_binary_keeps_its_guard_rails_and_dry_runs_what_they_allow() {
    let vars = [
        ("KILLABLE_FLAGS", "production:checkout-*"),
        ("DRY_RUN", "true"),
    ];
    let s = stack("guard-rails", &vars).await;
    s.vwo.add_flag("search-v2", true);
    let invoke = |feature: &str| {
        sentry_hook_event(
            "e2e-client-secret",
            "metric_alert",
            &sample("sentry/metric_alert.critical.json"),
            &format!("feature={feature}&environment=production"),
        )
    };
    // The sample's own rule names checkout-new-flow: its query is ignored; an alert without
    // rule settings names search-v2 through the URL.
    let mut bare: Value =
        serde_json::from_slice(&sample("sentry/metric_alert.critical.json")).unwrap();
    bare["data"]["metric_alert"]["alert_rule"]["triggers"] = json!([]);
    let outside = sentry_hook_event(
        "e2e-client-secret",
        "metric_alert",
        &serde_json::to_vec(&bare).unwrap(),
        "feature=search-v2&environment=production",
    );
    let (status, body) = response(s.api.invoke(outside, Duration::from_secs(30)).await);
    assert_eq!(status, 200, "{body}\n{:#?}", s.function.logs());
    assert_eq!(
        body["ignored"],
        "flag search-v2 in production is not in KILLABLE_FLAGS (production:checkout-*); not switched"
    );
    let (status, body) = response(
        s.api
            .invoke(invoke("checkout-new-flow"), Duration::from_secs(30))
            .await,
    );
    assert_eq!(status, 200, "{body}");
    assert_opens(
        &body["dryRun"]["message"],
        "dry run: would turn checkout-new-flow off in production",
    );
    assert!(s.vwo.toggles().is_empty(), "nothing switched");
    let logs = s.function.logs_until(|lines| {
        lines
            .iter()
            .filter(|l| l.contains(r#""message":"sentry webhook handled""#))
            .count()
            >= 2
    });
    let outcomes: Vec<String> = logs
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["message"] == "sentry webhook handled")
        .map(|v| v["outcome"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(outcomes, ["guarded", "dry_run"], "{logs:#?}");
    assert!(
        !logs.iter().any(|l| l.contains("KILLABLE_FLAGS is not set")),
        "no warning when the list is set"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_binary_serves_the_alert_rules_drop_downs_to_sentrys_signed_requests() {
    let moto = testkit::moto::shared();
    moto.create_table("e2e-options-state").await;
    let s = stack(
        "options",
        &[
            ("AWS_ENDPOINT_URL", moto.endpoint.as_str()),
            ("STATE_TABLE", "e2e-options-state"),
        ],
    )
    .await;
    let data = json!({"environment": "production"}).to_string();
    let event = testkit::options_event(
        Some("e2e-client-secret"),
        "/options/flags",
        &[("dependentData", &data)],
    );
    let (status, body) = response(s.api.invoke(event, Duration::from_secs(30)).await);
    assert_eq!(status, 200, "{body}\n{:#?}", s.function.logs());
    assert_eq!(
        body,
        json!([
            {"label": "The issue's suspect flag (changed shortly before the issue started)", "value": "@suspect"},
            {"label": "checkout new flow (checkout-new-flow)", "value": "checkout-new-flow"}
        ])
    );
    let unsigned = testkit::options_event(None, "/options/environments", &[]);
    let (status, body) = response(s.api.invoke(unsigned, Duration::from_secs(30)).await);
    assert_eq!(status, 401, "{body}");
    assert!(body["message"].is_string(), "{body}");
}

/// Issue 37, end to end through both binaries: a `@suspect` alert while Sentry's API fails is
/// answered 202 `deferred` by the kill switch binary; the worker binary, with the kill switch's
/// settings as the template gives it, decides it from the queue message and switches the suspect.
#[tokio::test(flavor = "multi_thread")]
async fn a_suspect_alert_waits_for_sentry_and_the_worker_binary_decides_it() {
    use crate::suspect_evidence::{alert, keep_changes, ISSUE};
    use bridge_state::latest_change::ChangeKind;
    use testkit::sentry_api::{ApiEvent, ApiIssue, ApiScript, ORG};

    let moto = crate::moto();
    moto.create_table("e2e-suspect-state").await;
    let queue = moto.create_queue("e2e-suspect").await;
    let dlq = moto.create_queue("e2e-suspect-dlq").await;
    let sentry = testkit::sentry::FakeSentry::start("unused").await;
    let token_param = "/e2e/suspect/sentry-api-token";
    moto.put_secure_string(token_param, "e2e-sentry-token")
        .await;
    sentry.set_api_token("e2e-sentry-token");
    let began = bridge_platform::clock::unix_secs() as i64 - 30;
    let changes = [("search-v2", 240, ChangeKind::SwitchedOn)];
    keep_changes("e2e-suspect-state", began, &changes).await;
    sentry.add_issue(ApiIssue {
        id: ISSUE.into(),
        first_seen: began,
        events: vec![ApiEvent::on("production", &["search-v2"]); 5],
    });
    sentry.script_api([ApiScript::Status(502)]);
    let api_url = sentry.api_url();
    let shared = [
        ("AWS_ENDPOINT_URL", moto.endpoint.as_str()),
        ("STATE_TABLE", "e2e-suspect-state"),
        ("TOGGLE_QUEUE_URL", queue.as_str()),
        ("SENTRY_API_TOKEN_PARAM", token_param),
        ("SENTRY_API_URL", api_url.as_str()),
        ("SENTRY_ORG", ORG),
    ];
    let s = stack("suspect", &shared).await;
    s.vwo.add_flag("search-v2", true);
    let event = sentry_hook_event(
        "e2e-client-secret",
        "event_alert",
        &alert(&["search-v2"]),
        "",
    );
    let (status, body) = response(s.api.invoke(event, Duration::from_secs(30)).await);
    assert_eq!(status, 202, "{body}\n{:#?}", s.function.logs());
    assert!(
        body["deferred"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("502")),
        "{body}"
    );
    assert!(s.vwo.toggles().is_empty(), "never a guess");

    // The worker binary, with the kill switch's settings (the template sets them on it).
    let api = RuntimeApi::start().await;
    let mut env = api.lambda_env("toggle-worker");
    env.extend(moto.aws_env());
    env.extend(
        [
            (
                "SENTRY_CLIENT_SECRET_PARAM",
                "/e2e/suspect/sentry-client-secret",
            ),
            ("VWO_API_TOKEN_PARAM", "/e2e/suspect/vwo-api-token"),
            ("VWO_API_BASE_URL", &s.vwo.base_url()),
            ("VWO_SETTINGS_BASE_URL", &s.vwo.settings_base_url()),
            ("TOGGLE_DLQ_URL", &dlq),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    env.extend(shared.map(|(k, v)| (k.to_owned(), v.to_owned())));
    let worker = FunctionProcess::spawn(
        &artifact("toggle-worker", env!("CARGO_BIN_EXE_toggle-worker")),
        &env,
    );
    // The deferred decision's message comes visible after its 5 s.
    hand_over(moto, &queue, &api, &worker, 15).await;
    let logs = worker
        .logs_until(|lines| lines.iter().any(|l| l.contains("deferred alert decided")))
        .join("\n");
    assert!(logs.contains("deferred alert decided"), "{logs}");
    assert_eq!(
        s.vwo.is_enabled("search-v2", "production"),
        Some(false),
        "{logs}"
    );
    for secret in ["e2e-sentry-token", "e2e-vwo-token", "e2e-client-secret"] {
        assert!(
            !logs.contains(secret),
            "a secret leaked into the worker's logs"
        );
    }
}
