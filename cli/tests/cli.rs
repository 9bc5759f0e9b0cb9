//! Every `bridge` command, run as a user would: the real binary, moto for SSM, local stand-ins.

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
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bridge-cli-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn every_command_has_help() {
    for command in [
        "local", "try", "url", "sign", "send", "check", "dlq", "rotate",
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
    let secrets = dir.join("secrets.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_bridge"))
        .args([
            "local",
            "--port",
            "0",
            "--secrets",
            secrets.to_str().unwrap(),
        ])
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

#[test]
fn local_run_then_try_shows_a_toggled_flag_and_a_reported_change() {
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
    assert!(said.contains("recorded a baseline of 2 flags"), "{said}");
    assert!(
        said.contains("the kill switch turned checkout-new-flow OFF in production")
            || said.contains("the kill switch accepted the kill and queued it"),
        "{said}"
    );
    assert!(said.contains("PATCH /api/v2/accounts/current/environments/production/features/checkout-new-flow/toggle"), "{said}");
    assert!(
        said.contains("sent 1 change(s) to Sentry: checkout-new-flow updated"),
        "{said}"
    );
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

#[test]
fn a_missing_python_tool_is_one_clear_message_not_a_panic() {
    let dir = temp_dir("no-moto");
    let out = bridge(
        &[
            "local",
            "--port",
            "0",
            "--secrets",
            dir.join("secrets.json").to_str().unwrap(),
        ],
        &[("PYTHON".to_owned(), "/nonexistent/python3".to_owned())],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let said = text(&out);
    assert!(!said.contains("panicked"), "{said}");
    assert!(
        said.contains("/nonexistent/python3 could not be started")
            && said.contains("-m pip install 'moto[server]'"),
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
    assert!(
        !again.contains("Sentry received"),
        "nothing new for Sentry: {again}"
    );
}
