//! Failures and concurrency: VWO, Sentry or DynamoDB failing loses no change, and no change is sent twice (one delivery at a time per environment).

use super::*;

/// A settings read that gives up soon, on a body of at most 1 MiB.
const SETTINGS_LIMITS: &[(&str, &str)] = &[
    ("VWO_SETTINGS_TIMEOUT_MS", "1500"),
    ("VWO_SETTINGS_MAX_BYTES", "1048576"),
];

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_settings_read_sends_nothing_and_keeps_the_snapshot() {
    let ctx = setup("bad-settings", SETTINGS_LIMITS).await;
    let app = instance(&ctx).await;
    flag_updated(&ctx, &app, TS - 60).await;
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
        let (status, body, _) = flag_updated(&ctx, &app, TS).await;
        assert_eq!(status, expected, "{name}: {body}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(1),
            "{name}: answered at once, not after sleeping"
        );
        assert_eq!(ctx.sentry.deliveries(), 0, "{name}: nothing sent");
    }
    // VWO's next delivery finds the real change, and only it.
    let (status, _, _) = flag_updated(&ctx, &app, TS).await;
    assert_eq!(status, 200);
    assert_sentry_has(&ctx, &[change("updated", "checkout-new-flow", TS)]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_baseline_read_records_nothing() {
    let ctx = setup("bad-baseline", &[]).await;
    let app = instance(&ctx).await;
    ctx.vwo.script_settings([VwoScript::Html]);
    let (status, _, _) = flag_updated(&ctx, &app, TS - 60).await;
    assert_eq!(status, 502);
    ctx.vwo.script([VwoScript::Status(200, None)]);
    let (status, body, _) = flag_updated(&ctx, &app, TS - 60).await;
    assert_eq!(status, 502, "a workspace answer that is not JSON: {body}");
    let (_, body, _) = flag_updated(&ctx, &app, TS - 60).await;
    assert_eq!(body, json!({"baseline": {"flags": 2}}));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sentry_failure_leaves_the_change_for_vwos_retry() {
    let (ctx, app) = baselined("sentry-500").await;
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
    assert_sentry_has(&ctx, &[change("updated", "checkout-new-flow", TS)]);
    assert_eq!(ctx.sentry.deliveries(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_200_with_a_validation_body_is_a_failure() {
    let (ctx, app) = baselined("sentry-body").await;
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
    assert_sentry_has(&ctx, &[change("updated", "checkout-new-flow", TS)]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sentry_timeout_leaves_the_change_for_vwos_retry() {
    let ctx = setup("sentry-timeout", &[("SENTRY_TIMEOUT_MS", "300")]).await;
    let app = instance(&ctx).await;
    flag_updated(&ctx, &app, TS - 60).await;
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
async fn a_hanging_dynamodb_is_a_503_within_the_timeouts() {
    let proxy = testkit::aws_proxy::AwsProxy::start(&moto().endpoint).await;
    let ctx = setup("dynamodb-hang", &[]).await;
    let app = instance_with_dynamodb(&ctx, &proxy.endpoint).await;
    proxy.set_hang(true);
    let started = std::time::Instant::now();
    let (status, body, _) = flag_updated(&ctx, &app, TS).await;
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

#[tokio::test(flavor = "multi_thread")]
async fn a_retried_commit_never_drops_another_deliverys_lease() {
    let proxy = testkit::aws_proxy::AwsProxy::start(&moto().endpoint).await;
    let ctx = setup("lost-commit", &[]).await;
    let table = ctx.vars["STATE_TABLE"].clone();
    let app = instance_with_dynamodb(&ctx, &proxy.endpoint).await;
    flag_updated(&ctx, &app, TS - 60).await;
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
    let (status, body, _) = flag_updated(&ctx, &app, TS).await;
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
    assert_sentry_has(&ctx, &[change("updated", "checkout-new-flow", TS)]);
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
async fn the_same_delivery_five_times_sends_one_event() {
    let (ctx, app) = baselined("repeat").await;
    ctx.vwo.set_enabled("search-v2", "production", true);
    let event = webhook(&ctx.auth, "feature_flag_updated", TS);
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(deliver(&app, &event).await.0);
    }
    assert_eq!(statuses, [200; 5], "{:?}", deliver(&app, &event).await.1);
    assert_sentry_has(&ctx, &[change("updated", "search-v2", TS)]);
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_deliveries_never_send_a_change_twice() {
    let ctx = setup("concurrent", &[]).await;
    let first = instance(&ctx).await;
    flag_updated(&ctx, &first, TS - 60).await;
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
    assert_sentry_has(&ctx, &[change("updated", "checkout-new-flow", TS)]);
}

#[tokio::test(flavor = "multi_thread")]
async fn twenty_concurrent_deliveries_send_each_change_once() {
    let ctx = setup("twenty", &[]).await;
    let apps = instances(&ctx, 20).await;
    flag_updated(&ctx, &apps[0], TS - 60).await;
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
