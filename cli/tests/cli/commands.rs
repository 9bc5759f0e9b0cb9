//! The CLI's commands that need no running stack: help, URLs, signatures, samples, exit codes.

use crate::*;

#[test]
fn every_command_has_help() {
    for command in [
        "local", "try", "url", "sign", "send", "event", "check", "dlq", "rotate",
    ] {
        let out = bridge(&[command, "--help"], &[]);
        assert!(out.status.success(), "{command}: {}", text(&out));
        assert!(text(&out).contains("Usage: bridge"), "{command}");
    }
}

#[test]
fn url_prints_validated_encoded_webhook_urls() {
    let out = bridge(
        &[
            "url",
            "sentry",
            "--function-url",
            "https://abc.lambda-url.eu-west-1.on.aws/",
            "--feature",
            "checkout new",
            "--environment",
            "production",
        ],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "https://abc.lambda-url.eu-west-1.on.aws/?feature=checkout+new&environment=production"
    );
    let out = bridge(
        &[
            "url",
            "vwo",
            "--function-url",
            "https://xyz.lambda-url.eu-west-1.on.aws/",
            "--environment",
            "staging",
        ],
        &[],
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "https://xyz.lambda-url.eu-west-1.on.aws/?environment=staging"
    );
    let bad = bridge(
        &[
            "url",
            "sentry",
            "--function-url",
            "http://evil.example/",
            "--feature",
            "f",
            "--environment",
            "e",
        ],
        &[],
    );
    assert_eq!(bad.status.code(), Some(2));
    assert!(text(&bad).contains("must be https://"), "{}", text(&bad));
}

#[test]
fn sign_prints_the_sentry_signature_of_the_exact_bytes() {
    let dir = temp_dir("sign");
    std::fs::write(dir.join("secret"), "s3cret\n").unwrap();
    let payload = workspace_root().join("events/sentry/metric_alert.critical.json");
    let out = bridge(
        &[
            "sign",
            "--payload",
            payload.to_str().unwrap(),
            "--secret-file",
            dir.join("secret").to_str().unwrap(),
        ],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out));
    let expected = testkit::hmac_hex("s3cret", &std::fs::read(&payload).unwrap());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), expected);
    let neither = bridge(&["sign", "--payload", payload.to_str().unwrap()], &[]);
    assert_eq!(neither.status.code(), Some(2));

    // The local run's secrets, by name.
    let secrets = dir.join("secrets.json");
    std::fs::write(&secrets, r#"{"sentry_client_secret": "local-s3cret"}"#).unwrap();
    let local = bridge(
        &[
            "sign",
            "--payload",
            payload.to_str().unwrap(),
            "--local-secret",
            "sentry_client_secret",
            "--local-secrets-file",
            secrets.to_str().unwrap(),
        ],
        &[],
    );
    assert!(local.status.success(), "{}", text(&local));
    let expected = testkit::hmac_hex("local-s3cret", &std::fs::read(&payload).unwrap());
    assert_eq!(String::from_utf8_lossy(&local.stdout).trim(), expected);
    let unknown = bridge(
        &[
            "sign",
            "--payload",
            payload.to_str().unwrap(),
            "--local-secret",
            "nope",
            "--local-secrets-file",
            secrets.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(unknown.status.code(), Some(2));
    assert!(
        text(&unknown).contains("has no \"nope\"; it has sentry_client_secret"),
        "{}",
        text(&unknown)
    );
}

#[test]
fn send_refuses_a_sample_that_would_switch_another_flag_on_a_deployed_stack() {
    let dir = temp_dir("send-guard");
    std::fs::write(dir.join("secret"), "s3cret\n").unwrap();
    let payload = workspace_root().join("events/sentry/metric_alert.critical.json");
    // Not loopback: the guard answers before any connection is tried (`.invalid` never resolves).
    let out = bridge(
        &[
            "send",
            "--url",
            "https://bridge.example.invalid/?feature=nope&environment=production",
            "--payload",
            payload.to_str().unwrap(),
            "--secret-file",
            dir.join("secret").to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains("feature=checkout-new-flow") && said.contains("--yes"),
        "{said}"
    );
}

/// One exit-code policy: 2 when the command cannot start (nothing sent), 1 when it ran and
/// something it talks to failed; messages are sentences without internal prefixes.
#[test]
fn exit_codes_follow_one_policy_and_messages_have_no_internal_prefixes() {
    let dir = temp_dir("exit-codes");
    let payload = workspace_root().join("events/sentry/metric_alert.critical.json");
    let payload = payload.to_str().unwrap();
    let secret = dir.join("secret");
    std::fs::write(&secret, "s3cret\n").unwrap();
    let secret = secret.to_str().unwrap();
    let missing = dir.join("missing.json");
    let missing = missing.to_str().unwrap();
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        format!("http://127.0.0.1:{port}/sentry-to-vwo?feature=checkout-new-flow&environment=production")
    };
    let cases: Vec<(Vec<&str>, i32, &str)> = vec![
        (
            vec!["sign", "--payload", missing, "--secret-file", secret],
            2,
            "cannot read",
        ),
        (
            vec!["sign", "--payload", payload, "--secret-file", missing],
            2,
            "cannot read",
        ),
        (
            vec![
                "sign",
                "--payload",
                payload,
                "--local-secret",
                "nope",
                "--local-secrets-file",
                missing,
            ],
            2,
            "start `bridge local` once",
        ),
        (
            vec![
                "send",
                "--url",
                "not a url",
                "--payload",
                payload,
                "--secret-file",
                secret,
            ],
            2,
            "is not a URL",
        ),
        (
            vec![
                "send",
                "--url",
                &closed,
                "--payload",
                payload,
                "--secret-file",
                secret,
            ],
            1,
            "nothing answered at",
        ),
        (
            vec!["rotate", "--param", "/x/vwo-api-token", "--generate"],
            2,
            "cannot be generated",
        ),
        (
            vec!["rotate", "--param", "/x/unknown", "--generate"],
            2,
            "not one of the bridge's secrets",
        ),
        (
            vec![
                "url",
                "sentry",
                "--function-url",
                "ftp://x",
                "--feature",
                "f",
                "--environment",
                "e",
            ],
            2,
            "function URL",
        ),
    ];
    for (args, code, says) in cases {
        let out = bridge(&args, &[]);
        let said = text(&out);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {said}");
        assert!(said.contains(says), "{args:?}: {said}");
        for prefix in [
            "configuration:",
            "bad request:",
            "secrets unavailable:",
            "failed:",
            "Some(",
            "DispatchFailure",
            "builder error",
        ] {
            assert!(!said.contains(prefix), "{args:?} leaks {prefix:?}: {said}");
        }
    }
}
