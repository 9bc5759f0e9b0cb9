//! Who may deliver: `x-vwo-auth` and the signing secret refused, accepted and rotated, and hostile or malformed deliveries, each with its status and reaching no one.

use super::*;

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

/// A hostile or malformed delivery: a good one spoiled one way, and what it must get.
#[derive(Clone)]
struct BadDelivery<'a> {
    /// What the case is, for the failure message.
    name: &'a str,
    method: &'a str,
    query: &'a str,
    /// `x-vwo-auth`, if sent.
    auth: Option<String>,
    content_type: &'a str,
    body: Vec<u8>,
    /// The status expected.
    status: u16,
    /// What the answer's `error` says.
    message: &'a str,
}

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
    let good = BadDelivery {
        name: "",
        method: "POST",
        query: "environment=production",
        auth: Some(auth.clone()),
        content_type: "application/json",
        body: body.clone(),
        status: 0,
        message: "",
    };
    let cases = vec![
        BadDelivery {
            name: "no x-vwo-auth",
            auth: None,
            status: 401,
            message: "missing x-vwo-auth",
            ..good.clone()
        },
        BadDelivery {
            name: "empty x-vwo-auth",
            auth: Some(String::new()),
            status: 401,
            message: "invalid x-vwo-auth",
            ..good.clone()
        },
        BadDelivery {
            name: "wrong secret",
            auth: Some("nope".into()),
            status: 401,
            message: "invalid x-vwo-auth",
            ..good.clone()
        },
        BadDelivery {
            name: "uppercase secret",
            auth: Some(auth.to_uppercase()),
            status: 401,
            message: "invalid x-vwo-auth",
            ..good.clone()
        },
        BadDelivery {
            name: "secret with a suffix",
            auth: Some(format!("{auth}x")),
            status: 401,
            message: "invalid x-vwo-auth",
            ..good.clone()
        },
        BadDelivery {
            name: "prefix of the secret",
            auth: Some(auth[..auth.len() - 1].to_owned()),
            status: 401,
            message: "invalid x-vwo-auth",
            ..good.clone()
        },
        BadDelivery {
            name: "secret too long for a header",
            auth: Some("a".repeat(2000)),
            status: 400,
            message: "too long",
            ..good.clone()
        },
        BadDelivery {
            name: "GET",
            method: "GET",
            status: 405,
            message: "method GET not allowed",
            ..good.clone()
        },
        BadDelivery {
            name: "DELETE",
            method: "DELETE",
            status: 405,
            message: "method DELETE not allowed",
            ..good.clone()
        },
        BadDelivery {
            name: "text/plain",
            content_type: "text/plain",
            status: 415,
            message: "unsupported content type",
            ..good.clone()
        },
        BadDelivery {
            name: "body over the cap",
            body: vec![b' '; 5000],
            status: 413,
            message: "too large",
            ..good.clone()
        },
        BadDelivery {
            name: "truncated JSON",
            body: body[..body.len() / 2].to_vec(),
            status: 400,
            message: "not a VWO webhook",
            ..good.clone()
        },
        BadDelivery {
            name: "JSON array",
            body: b"[1,2]".to_vec(),
            status: 400,
            message: "not a JSON object",
            ..good.clone()
        },
        BadDelivery {
            name: "duplicate keys",
            body: br#"{"action":"a","action":"b"}"#.to_vec(),
            status: 400,
            message: "duplicate field",
            ..good.clone()
        },
        BadDelivery {
            name: "nesting 1500 deep",
            body: deep.into_bytes(),
            status: 400,
            message: "recursion limit",
            ..good.clone()
        },
        BadDelivery {
            name: "no environment",
            query: "",
            status: 400,
            message: "?environment=",
            ..good.clone()
        },
        BadDelivery {
            name: "dot-dot environment",
            query: "environment=..",
            status: 400,
            message: "is not an identifier",
            ..good.clone()
        },
        BadDelivery {
            name: "path-traversal environment",
            query: "environment=..%2Fproduction",
            status: 400,
            message: "contains a slash",
            ..good.clone()
        },
    ];
    assert!(cases.len() >= 15);
    for case in cases {
        let BadDelivery {
            name,
            status: expected,
            message,
            ..
        } = case;
        let mut headers = vec![("content-type", case.content_type)];
        if let Some(secret) = case.auth.as_deref() {
            headers.push(("x-vwo-auth", secret));
        }
        let event = function_url_event(case.method, case.query, &headers, &case.body, false);
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
    let (old, _, _) = flag_updated(&ctx, &app, TS).await;
    let (new, _, _) = deliver(
        &app,
        &webhook("brand-new-secret", "feature_flag_updated", TS),
    )
    .await;
    assert_eq!((old, new), (200, 200));
    moto.delete_parameter(&format!("{}/vwo-webhook-secret/previous", ctx.prefix))
        .await;
    let app = instance(&ctx).await;
    let (old, _, _) = flag_updated(&ctx, &app, TS).await;
    assert_eq!(
        old, 401,
        "the old secret stops working when /previous is deleted"
    );
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
    let (ctx, app) = baselined("stream-signing").await;
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
        let (status, body, _) = flag_updated(&ctx, &app, TS + i).await;
        assert_eq!(status, 200, "delivery {i}: {body}");
    }
    assert_eq!(ctx.sentry.accepted_changes().len(), 6);
    assert_eq!(
        ctx.sentry.rejections(),
        vec!["bad signature".to_owned()],
        "one 401, then the re-read secret"
    );
}
