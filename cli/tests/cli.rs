//! Every `bridge` command, run as a user would: the real binary, moto for SSM, local stand-ins.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failure is a panic

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use testkit::process::workspace_root;
use testkit::vwo::FakeVwo;

fn bridge<S: AsRef<std::ffi::OsStr>>(args: &[S], env: &[(String, String)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bridge"))
        .args(args)
        .current_dir(workspace_root())
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .expect("bridge runs")
}

fn text(o: &Output) -> String {
    testkit::process::output_text(o)
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bridge-cli-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

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

struct Local {
    child: Child,
    base: String,
    secrets: PathBuf,
}

impl Drop for Local {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_local(dir: &Path) -> Local {
    start_local_with(dir, &[])
}

fn start_local_with(dir: &Path, extra: &[&str]) -> Local {
    let secrets = dir.join("secrets.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_bridge"))
        .args([
            "local",
            "--port",
            "0",
            "--secrets",
            secrets.to_str().unwrap(),
        ])
        .args(extra)
        .current_dir(workspace_root())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let first = lines.next().expect("bridge local prints its URLs").unwrap();
    let url = first.split_whitespace().last().unwrap();
    let base = url.split("/sentry-to-vwo").next().unwrap().to_owned();
    std::thread::spawn(move || for _ in lines {});
    Local {
        child,
        base,
        secrets,
    }
}

async fn get_json(url: &str) -> serde_json::Value {
    testkit::http_client()
        .get(url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// What docs/cargo-lambda.md describes: both functions, configured by nothing but
/// `bridge local --env-file` (their variables and the AWS endpoint, region and credentials it
/// names), answer events from `bridge event`, switch the local VWO's flag and report to the local
/// Sentry. The functions run in this process, through their handlers (a test binary runs only
/// its own package's binaries; each function's binary is tested end to end beside it).
#[tokio::test(flavor = "multi_thread")]
async fn functions_configured_by_the_env_file_answer_events_from_bridge_event() {
    use std::collections::HashMap;
    let dir = temp_dir("env-file");
    let env_file = dir.join("lambda.env");
    let local = start_local_with(&dir, &["--env-file", env_file.to_str().unwrap()]);
    let env: Vec<(String, String)> = std::fs::read_to_string(&env_file)
        .expect("bridge local wrote the env file before printing its URLs")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap();
            (k.to_owned(), v.to_owned())
        })
        .collect();
    assert!(env.iter().any(|(k, _)| k == "AWS_ENDPOINT_URL"), "{env:?}");
    let secrets = local.secrets.to_str().unwrap().to_owned();
    let event = |args: Vec<&str>| {
        let mut all = vec!["event", "--local-secrets-file", &secrets];
        all.extend(args);
        let out = bridge(&all, &[]);
        assert!(out.status.success(), "{}", text(&out));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let vars: HashMap<String, String> = env.into_iter().collect();
    let aws = aws_sdk_ssm::config::Credentials::new(
        &vars["AWS_ACCESS_KEY_ID"],
        &vars["AWS_SECRET_ACCESS_KEY"],
        None,
        None,
        "the env file",
    );
    let aws = bridge_platform::aws::aws_config_loader()
        .endpoint_url(&vars["AWS_ENDPOINT_URL"])
        .region(aws_sdk_ssm::config::Region::new(vars["AWS_REGION"].clone()))
        .credentials_provider(aws)
        .load()
        .await;
    let read = |n: &str| vars.get(n).cloned();
    let tracking = vwo_to_sentry::App::new(
        vwo_to_sentry::config::Config::from_vars(&read).unwrap(),
        testkit::ssm(&aws),
        &aws,
    )
    .unwrap();
    tracking.warm_up().await;
    let kill = sentry_to_vwo::App::new(
        sentry_to_vwo::config::Config::from_vars(&read).unwrap(),
        testkit::ssm(&aws),
        &aws,
    )
    .unwrap();
    kill.warm_up().await;
    let answer = |response: lambda_http::Response<lambda_http::Body>| {
        let status = response.status().as_u16();
        let body: serde_json::Value = match response.body() {
            lambda_http::Body::Text(text) => serde_json::from_str(text).unwrap(),
            other => panic!("a JSON answer, not {other:?}"),
        };
        (status, body)
    };
    let request =
        |event: serde_json::Value| lambda_http::request::from_str(&event.to_string()).unwrap();

    let vwo_webhook = || {
        event(vec![
            "--as",
            "vwo",
            "--payload",
            "events/vwo/feature_flag_updated.json",
            "--query",
            "environment=production",
            "--local-secret",
            "vwo_webhook_secret",
        ])
    };
    let webhook = vwo_webhook();
    let (status, body) = answer(vwo_to_sentry::handle(&tracking, request(webhook)).await);
    assert_eq!(status, 200, "{body}");

    let alert = event(vec![
        "--payload",
        "events/sentry/metric_alert.critical.json",
        "--query",
        "feature=checkout-new-flow&environment=production",
        "--local-secret",
        "sentry_client_secret",
    ]);
    let (status, body) = answer(sentry_to_vwo::handle(&kill, request(alert)).await);
    assert!(matches!(status, 200 | 202), "{status} {body}");
    let mut vwo = serde_json::Value::Null;
    for _ in 0..100 {
        vwo = get_json(&format!("{}/_local/vwo", local.base)).await;
        let toggles = vwo["requests"].as_array().unwrap().iter().filter(|r| {
            r["method"] == "PATCH"
                && r["path"]
                    .as_str()
                    .unwrap_or_default()
                    .ends_with("/checkout-new-flow/toggle")
        });
        if toggles.count() > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let toggled = vwo["requests"]
        .to_string()
        .contains("/checkout-new-flow/toggle");
    assert!(toggled, "the local VWO was asked to toggle: {vwo}");

    // The next webhook reports the change to the local Sentry.
    let second = vwo_webhook();
    let (status, body) = answer(vwo_to_sentry::handle(&tracking, request(second)).await);
    assert_eq!(status, 200, "{body}");
    let sentry = get_json(&format!("{}/_local/sentry", local.base)).await;
    let changes = sentry["changes"].as_array().unwrap();
    assert!(
        changes
            .iter()
            .any(|c| c["flag"] == "checkout-new-flow" && c["action"] == "updated"),
        "{sentry}"
    );
}

#[test]
fn local_run_then_try_tells_the_whole_story_from_switch_to_suspect_to_kill() {
    let dir = temp_dir("local");
    let local = start_local(&dir);
    let secrets: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&local.secrets).unwrap()).unwrap();
    assert_eq!(
        secrets.as_object().unwrap().len(),
        4,
        "four random secrets created on first run"
    );
    let out = bridge(
        &[
            "try",
            "--url",
            &local.base,
            "--secrets",
            local.secrets.to_str().unwrap(),
        ],
        &[],
    );
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    // The whole story, as in production (README "Quick start"):
    // change tracking's baseline, then a person switches search-v2 on in VWO, reported with them
    // as the author;
    assert!(said.contains("recorded a baseline of 2 flags"), "{said}");
    assert!(
        said.contains("search-v2 updated by ana@example.com"),
        "{said}"
    );
    // the application (the real Python SDKs with integrations/python) evaluates it and fails, and
    // its error event carries the evaluation;
    assert!(said.contains("evaluates search-v2: on"), "{said}");
    assert!(said.contains("contexts.flags search-v2 = true"), "{said}");
    // Sentry names the flag as the issue's suspect, with its author;
    let suspect = said
        .lines()
        .find(|l| l.contains("suspect flag: search-v2 — updated by ana@example.com"))
        .unwrap_or_else(|| panic!("no suspect flag line:\n{said}"));
    assert!(suspect.ends_with("s before the issue started"), "{suspect}");
    // the issue alert fires with a rule that names no flag (@suspect), and the kill switch finds
    // the suspect from the event and the change, and turns it off;
    assert!(said.contains("names no flag but @suspect"), "{said}");
    assert!(
        said.contains("the kill switch found the issue's suspect (switched on by ana@example.com")
            || said.contains("the kill switch accepted the kill and queued it"),
        "{said}"
    );
    assert!(
        said.contains("turned search-v2 OFF in production")
            || said.contains("the kill switch accepted the kill and queued it"),
        "{said}"
    );
    assert!(
        said.contains(
            "PATCH /api/v2/accounts/current/environments/production/features/search-v2/toggle"
        ),
        "{said}"
    );
    // the loop closes: Sentry's change log names the alert rule's suspect kill.
    assert!(
        said.contains(r#"search-v2 updated by "kill switch (suspect of "Search errors > 20/5m")""#),
        "{said}"
    );
    // A second run tells the same story (the flag was left off by the kill).
    let again = bridge(
        &[
            "try",
            "--url",
            &local.base,
            "--secrets",
            local.secrets.to_str().unwrap(),
        ],
        &[],
    );
    assert!(again.status.success(), "{}", text(&again));
    assert!(
        text(&again).contains("suspect flag: search-v2 — updated by ana@example.com"),
        "{}",
        text(&again)
    );
    // `--dry-run`: the alert only says what it would do; the flag stays on.
    let dry = bridge(
        &[
            "try",
            "--url",
            &local.base,
            "--secrets",
            local.secrets.to_str().unwrap(),
            "--dry-run",
        ],
        &[],
    );
    let said_dry = text(&dry);
    assert!(dry.status.success(), "{said_dry}");
    assert!(
        said_dry.contains("dry run: would turn search-v2 off in production"),
        "{said_dry}"
    );
    assert!(!said_dry.contains("VWO was asked: PATCH"), "{said_dry}");
    for value in secrets.as_object().unwrap().values() {
        assert!(
            !said.contains(value.as_str().unwrap()),
            "a secret was printed"
        );
    }

    // `send` delivers a payload as Sentry would, to the same local kill switch.
    let secret_file = dir.join("client-secret");
    std::fs::write(
        &secret_file,
        secrets["sentry_client_secret"].as_str().unwrap(),
    )
    .unwrap();
    let url = format!(
        "{}/sentry-to-vwo?feature=search-v2&environment=staging",
        local.base
    );
    let payload = workspace_root().join("events/sentry/event_alert.triggered.json");
    let out = bridge(
        &[
            "send",
            "--url",
            &url,
            "--payload",
            payload.to_str().unwrap(),
            "--resource",
            "event_alert",
            "--secret-file",
            secret_file.to_str().unwrap(),
        ],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).starts_with("HTTP 200"), "{}", text(&out));
    // The sample's rule settings name checkout-new-flow in production: they override the URL.
    assert!(
        text(&out).contains(r#""feature":"checkout-new-flow""#),
        "{}",
        text(&out)
    );
    std::fs::write(&secret_file, "wrong").unwrap();
    let out = bridge(
        &[
            "send",
            "--url",
            &url,
            "--payload",
            payload.to_str().unwrap(),
            "--resource",
            "event_alert",
            "--secret-file",
            secret_file.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("HTTP 401") && text(&out).contains("Sentry-Hook-Error: unauthorized"),
        "{}",
        text(&out)
    );

    // `options` shows the alert rule's drop-downs as Sentry would, asking the local kill switch
    // as Sentry asks (at the host, with the schema's uri, signed over the empty body).
    let options = |args: &[&str]| {
        let mut all = vec!["options"];
        all.extend_from_slice(args);
        all.extend_from_slice(&[
            "--url",
            &local.base,
            "--local-secrets-file",
            local.secrets.to_str().unwrap(),
        ]);
        bridge(&all, &[])
    };
    let out = options(&["environments"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("Web app / production  → 1"),
        "{}",
        text(&out)
    );
    // Staging: the story above switched flags in production only; checkout-new-flow is on
    // there (search-v2, off everywhere, is not in the settings file).
    let out = options(&["flags", "--environment", "staging"]);
    assert!(out.status.success(), "{}", text(&out));
    let suspect = "The issue's suspect flag (changed shortly before the issue started)";
    let width = suspect.chars().count();
    assert_eq!(
        text(&out).trim(),
        format!(
            "{suspect}  → @suspect\n{:<width$}  → checkout-new-flow",
            "checkout new flow (checkout-new-flow)"
        ),
    );
    let out = options(&["flags", "--environment", "prodution"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("\"prodution\""), "{}", text(&out));
}

fn moto_env() -> Vec<(String, String)> {
    testkit::moto::shared().aws_env()
}

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

/// `bridge local` with this `PATH` and an empty target directory (no `target/pytools` yet).
fn local_on_a_fresh_clone(dir: &Path, path: String) -> Output {
    let secrets = dir.join("secrets.json");
    let target = dir.join("target");
    bridge(
        &[
            "local",
            "--port",
            "0",
            "--secrets",
            secrets.to_str().unwrap(),
        ],
        &[
            ("PATH".to_owned(), path),
            ("CARGO_TARGET_DIR".to_owned(), target.display().to_string()),
        ],
    )
}

/// `bridge local` on a machine without the Python tools: one sentence naming what is missing and
/// how to install it, exit 2, no panic. Run with a `PATH` that hides Python and an empty target
/// directory, as on a fresh clone.
#[test]
fn a_missing_python_is_one_clear_message_with_the_install_command() {
    let dir = temp_dir("no-python");
    let out = local_on_a_fresh_clone(&dir, dir.join("empty-bin").display().to_string());
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let said = text(&out);
    assert!(!said.contains("panicked"), "{said}");
    assert_eq!(
        said.lines().filter(|l| l.starts_with("error:")).count(),
        1,
        "{said}"
    );
    assert!(
        said.contains("error: Python 3 was not found")
            && said.contains("apt-get install python3 python3-venv")
            && said.contains("BRIDGE_PYTHON"),
        "{said}"
    );
}

/// A Python that cannot make a virtual environment (Debian without python3-venv) is named, with
/// the package to install.
#[test]
fn a_python_without_venv_is_one_clear_message() {
    let dir = temp_dir("no-venv");
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let python = bin.join("python3");
    std::fs::write(
        &python,
        "#!/bin/sh\necho 'The virtual environment was not created successfully because ensurepip is not available.' >&2\nexit 1\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&python, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = local_on_a_fresh_clone(&dir, format!("{}:/usr/bin:/bin", bin.display()));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains("could not create a virtual environment")
            && said.contains("ensurepip is not available")
            && said.contains("install python3-venv"),
        "{said}"
    );
    assert!(
        !dir.join("target/pytools").exists(),
        "nothing half-made is left"
    );
}

/// `bridge try --app browser`: the application step is a page in headless Chromium (Debian's
/// `chromium`; the web application installed as the integration's README says), and the story
/// goes on from its error event as from the Python service's.
#[test]
fn try_with_the_application_in_the_browser_tells_the_same_story() {
    if let Err(why) = testkit::nodetools::chromium() {
        assert!(std::env::var_os("CI").is_none(), "CI must run it: {why}");
        return eprintln!("SKIPPED `bridge try --app browser`: {why}");
    }
    let dir = temp_dir("try-browser");
    let local = start_local(&dir);
    let secrets = local.secrets.to_str().unwrap();
    let out = bridge(
        &[
            "try",
            "--app",
            "browser",
            "--url",
            &local.base,
            "--secrets",
            secrets,
        ],
        &[],
    );
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("(a page in headless Chromium: VWO's and Sentry's browser SDKs with integrations/node) evaluates search-v2: on"), "{said}");
    assert!(said.contains("contexts.flags search-v2 = true"), "{said}");
    assert!(
        said.contains("suspect flag: search-v2 — updated by ana@example.com"),
        "{said}"
    );
    assert!(
        said.contains("turned search-v2 OFF in production"),
        "{said}"
    );
}

#[test]
fn try_started_before_local_waits_for_it_and_a_second_run_shows_only_its_own_requests() {
    let dir = temp_dir("try-race");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let secrets = dir.join("secrets.json");
    // `try` first, as a newcomer with two terminals might.
    let early = Command::new(env!("CARGO_BIN_EXE_bridge"))
        .args([
            "try",
            "--url",
            &base,
            "--secrets",
            secrets.to_str().unwrap(),
        ])
        .current_dir(workspace_root())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(1));
    let mut local = Command::new(env!("CARGO_BIN_EXE_bridge"))
        .args([
            "local",
            "--port",
            &port.to_string(),
            "--secrets",
            secrets.to_str().unwrap(),
        ])
        .current_dir(workspace_root())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = early.wait_with_output().unwrap();
    let said = text(&out);
    let second = bridge(
        &[
            "try",
            "--url",
            &base,
            "--secrets",
            secrets.to_str().unwrap(),
        ],
        &[],
    );
    let _ = local.kill();
    let _ = local.wait();
    assert!(out.status.success(), "{said}");
    assert!(said.contains("waiting for `bridge local`"), "{said}");
    assert!(said.contains("recorded a baseline"), "{said}");
    let again = text(&second);
    assert!(
        second.status.success(),
        "a second run is not a replay: {again}"
    );
    assert_eq!(
        again.matches("VWO was asked").count(),
        1,
        "only this run's requests: {again}"
    );
    // This run's two changes (the person's switch and the kill), not the first run's.
    assert_eq!(
        again.matches("Sentry received").count(),
        2,
        "only this run's changes: {again}"
    );
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
        said.contains("ENABLE_ALLOWED_IN is empty: no alert turns a flag on"),
        "{said}"
    );
    let said = text(&run("no-such-function").await.unwrap());
    assert!(
        said.contains("FAIL the kill switch's configuration is not readable"),
        "{said}"
    );
}
