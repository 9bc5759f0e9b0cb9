//! Operating a deployed stack: `check`, `rotate`, `dlq`, against moto.

use crate::*;

#[tokio::test(flavor = "multi_thread")]
async fn check_reports_missing_parameters_and_a_rejected_token_with_fixes() {
    let moto = testkit::moto::shared();
    let prefix = "/cli-check";
    let vwo = FakeVwo::start("good-token").await;
    for name in ["sentry-client-secret", "vwo-webhook-secret"] {
        moto.put_secure_string(&format!("{prefix}/{name}"), "x")
            .await;
    }
    moto.put_secure_string(&format!("{prefix}/vwo-api-token"), "bad-token")
        .await;
    let args: Vec<String> = vec![
        "check".into(),
        "--prefix".into(),
        prefix.into(),
        "--vwo-api-base-url".into(),
        vwo.base_url(),
    ];
    let run = |args: Vec<String>| tokio::task::spawn_blocking(move || bridge(&args, &moto_env()));
    let out = run(args.clone()).await.unwrap();
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains("FAIL /cli-check/sentry-signing-secret: missing"),
        "{said}"
    );
    assert!(said.contains("fix: aws ssm put-parameter --type SecureString --name /cli-check/sentry-signing-secret"), "{said}");
    assert!(
        said.contains("FAIL VWO rejected the token: HTTP 403"),
        "{said}"
    );
    assert!(!said.contains("bad-token"), "the token is not printed");

    moto.put_secure_string(&format!("{prefix}/sentry-signing-secret"), "x")
        .await;
    moto.put_secure_string(&format!("{prefix}/vwo-api-token"), "good-token")
        .await;
    let out = run(args).await.unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("ok   VWO accepts the token"),
        "{}",
        text(&out)
    );
    let reads = vwo.requests();
    assert_eq!(reads.last().unwrap().method, "GET", "check only reads");
}

#[tokio::test(flavor = "multi_thread")]
async fn rotate_keeps_the_old_value_under_previous_and_prints_no_secret() {
    let moto = testkit::moto::shared();
    let name = "/cli-rotate/vwo-webhook-secret";
    moto.put_secure_string(name, "old-webhook-secret").await;
    let out = tokio::task::spawn_blocking(move || {
        bridge(&["rotate", "--param", name, "--generate"], &moto_env())
    })
    .await
    .unwrap();
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains("Kept the old value in /cli-rotate/vwo-webhook-secret/previous."),
        "{said}"
    );
    assert!(
        said.contains("Paste the new secret into each VWO environment"),
        "{said}"
    );
    let get = |n: &str| {
        let body = serde_json::json!({"Name": n, "WithDecryption": true});
        async move {
            moto.call("AmazonSSM.GetParameter", body).await["Parameter"]["Value"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    assert_eq!(
        get("/cli-rotate/vwo-webhook-secret/previous").await,
        "old-webhook-secret"
    );
    let new = get(name).await;
    assert_eq!(new.len(), 64);
    assert!(
        !said.contains(&new),
        "the new secret is printed only when asked"
    );

    let dir = temp_dir("rotate");
    std::fs::write(dir.join("v"), "chosen-value").unwrap();
    let file = dir.join("v").to_str().unwrap().to_owned();
    let out = tokio::task::spawn_blocking(move || {
        bridge(
            &[
                "rotate",
                "--param",
                name,
                "--value-file",
                &file,
                "--show-secret",
            ],
            &moto_env(),
        )
    })
    .await
    .unwrap();
    assert!(
        text(&out).contains("New value: chosen-value"),
        "{}",
        text(&out)
    );
    assert_eq!(get("/cli-rotate/vwo-webhook-secret/previous").await, new);
}

/// `--generate` only for the secrets we choose; `/previous` only for the one a function reads.
#[tokio::test(flavor = "multi_thread")]
async fn rotate_generates_only_our_secrets_and_keeps_previous_only_where_it_is_read() {
    let moto = testkit::moto::shared();
    moto.put_secure_string("/cli-rotate2/vwo-api-token", "old-token")
        .await;
    moto.put_secure_string("/cli-rotate2/sentry-signing-secret", "old-signing")
        .await;
    let refused = tokio::task::spawn_blocking(|| {
        bridge(
            &[
                "rotate",
                "--param",
                "/cli-rotate2/vwo-api-token",
                "--generate",
            ],
            &moto_env(),
        )
    })
    .await
    .unwrap();
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
    assert!(
        text(&refused).contains("VWO issues the API token")
            && text(&refused).contains("--value-file"),
        "{}",
        text(&refused)
    );
    let get = |n: &'static str| {
        let body = serde_json::json!({"Name": n, "WithDecryption": true});
        async move { moto.call("AmazonSSM.GetParameter", body).await["Parameter"]["Value"].clone() }
    };
    assert_eq!(get("/cli-rotate2/vwo-api-token").await, "old-token");

    let out = tokio::task::spawn_blocking(|| {
        bridge(
            &[
                "rotate",
                "--param",
                "/cli-rotate2/sentry-signing-secret",
                "--generate",
            ],
            &moto_env(),
        )
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(!text(&out).contains("/previous"), "{}", text(&out));
    assert_ne!(
        get("/cli-rotate2/sentry-signing-secret").await,
        "old-signing"
    );
    let previous = moto
        .try_call(
            "AmazonSSM.GetParameter",
            serde_json::json!({"Name": "/cli-rotate2/sentry-signing-secret/previous"}),
        )
        .await;
    assert!(
        previous.is_err(),
        "no /previous copy nobody reads: {previous:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn dlq_lists_given_up_kills_and_redrives_them() {
    let moto = testkit::moto::shared();
    let dlq = moto.create_queue("cli-dlq").await;
    let queue = moto.create_queue("cli-toggles").await;
    let empty = bridge(&["dlq", "--url", &dlq], &moto_env());
    assert!(empty.status.success(), "{}", text(&empty));
    assert!(text(&empty).contains("no dead-lettered kills"));
    let job = serde_json::json!({"target": {"account": "current", "environment": "production",
        "feature": "checkout-new-flow"}, "enabled": false, "restore": false, "generation": 1,
        "accepted_at": 1_700_000_000u64, "rule": "Checkout errors"});
    moto.call(
        "AmazonSQS.SendMessage",
        serde_json::json!({"QueueUrl": dlq, "MessageBody": job.to_string(),
            "MessageAttributes": {"reason": {"DataType": "String", "StringValue": "retry horizon of 86400 s passed (12 attempts)"}}}),
    )
    .await;
    let listed = bridge(&["dlq", "--url", &dlq], &moto_env());
    assert_eq!(listed.status.code(), Some(1), "something needs a person");
    let out = text(&listed);
    assert!(
        out.contains("checkout-new-flow in production (account current) → off")
            && out.contains("retry horizon of 86400 s passed"),
        "{out}"
    );
    let redriven = bridge(&["dlq", "--url", &dlq, "--redrive-to", &queue], &moto_env());
    assert!(redriven.status.success(), "{}", text(&redriven));
    assert!(text(&redriven).contains("1 kill(s) moved back"));
    assert_eq!(moto.queue_depth(&dlq).await, 0);
    assert_eq!(moto.queue_depth(&queue).await, 1);
}

/// The kill switch's function as the stack deploys it, in moto's Lambda (which requires the
/// role to exist): the environment variables `bridge check` reads.
async fn deploy_kill_switch(name: &str, variables: &[(&str, &str)]) {
    let moto = testkit::moto::shared();
    let role = format!("{name}-role");
    let created = testkit::http_client()
        .post(&moto.endpoint)
        .header(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=0",
        )
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            url::form_urlencoded::Serializer::new(String::new())
                .append_pair("Action", "CreateRole")
                .append_pair("Version", "2010-05-08")
                .append_pair("RoleName", &role)
                .append_pair("AssumeRolePolicyDocument", r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#)
                .finish(),
        )
        .send()
        .await
        .unwrap();
    assert!(created.status().is_success(), "{:?}", created.text().await);
    let env: std::collections::HashMap<String, String> = moto_env().into_iter().collect();
    let aws = bridge_platform::aws::aws_config_loader()
        .endpoint_url(&env["AWS_ENDPOINT_URL"])
        .region(aws_sdk_lambda::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_lambda::config::Credentials::new(
            "testing", "testing", None, None, "moto",
        ))
        .load()
        .await;
    let mut environment = aws_sdk_lambda::types::Environment::builder();
    for (k, v) in variables {
        environment = environment.variables(*k, *v);
    }
    // An empty zip archive: moto stores the code, it does not run it here.
    let mut zip = b"PK\x05\x06".to_vec();
    zip.extend([0u8; 18]);
    aws_sdk_lambda::Client::new(&aws)
        .create_function()
        .function_name(name)
        .runtime(aws_sdk_lambda::types::Runtime::Providedal2023)
        .role(format!("arn:aws:iam::123456789012:role/{role}"))
        .handler("bootstrap")
        .code(
            aws_sdk_lambda::types::FunctionCode::builder()
                .zip_file(aws_sdk_lambda::primitives::Blob::new(zip))
                .build(),
        )
        .environment(environment.build())
        .send()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn check_prints_the_deployed_kill_switchs_guard_rails() {
    let common = [
        (
            "SENTRY_CLIENT_SECRET_PARAM",
            "/cli-guards/sentry-client-secret",
        ),
        ("VWO_API_TOKEN_PARAM", "/cli-guards/vwo-api-token"),
    ];
    let guarded = [
        common[0],
        common[1],
        ("KILLABLE_FLAGS", "production:checkout-*,staging:*"),
        ("ENABLE_ALLOWED_IN", "staging"),
        ("MAX_RESTORES_PER_DAY", "2"),
    ];
    deploy_kill_switch("cli-guarded-kill-switch", &guarded).await;
    deploy_kill_switch(
        "cli-open-kill-switch",
        &[common[0], common[1], ("DRY_RUN", "true")],
    )
    .await;
    let run = |function: &'static str| {
        tokio::task::spawn_blocking(move || {
            bridge(
                &[
                    "check",
                    "--prefix",
                    "/cli-guards",
                    "--vwo-api-base-url",
                    "http://127.0.0.1:9",
                    "--kill-switch-function",
                    function,
                ],
                &moto_env(),
            )
        })
    };
    let said = text(&run("cli-guarded-kill-switch").await.unwrap());
    for line in [
        "ok   KILLABLE_FLAGS: only production:checkout-*,staging:* may be switched",
        "ok   ENABLE_ALLOWED_IN: flags may be turned on in staging",
        "ok   MAX_RESTORES_PER_DAY: at most 2 automatic restores per flag in 24 hours",
    ] {
        assert!(said.contains(line), "{line}\n{said}");
    }
    let said = text(&run("cli-open-kill-switch").await.unwrap());
    assert!(
        said.contains(
            "FAIL KILLABLE_FLAGS is empty: an alert rule may switch any flag in any environment"
        ),
        "{said}"
    );
    assert!(
        said.contains("fix: set the stack's KillableFlags parameter"),
        "{said}"
    );
    assert!(said.contains("FAIL DRY_RUN is on"), "{said}");
    assert!(
        said.contains("FAIL feature=@suspect rules switch nothing: they need STATE_TABLE"),
        "{said}"
    );
    assert!(
        said.contains("ENABLE_ALLOWED_IN is empty: no alert turns a flag on"),
        "{said}"
    );
    let said = text(&run("no-such-function").await.unwrap());
    assert!(
        said.contains("FAIL the kill switch's configuration is not readable"),
        "{said}"
    );
}
