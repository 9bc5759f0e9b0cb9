//! `bridge local` and `bridge try`: the whole story on 127.0.0.1, the env file, and a fresh clone's first run.

use crate::*;

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
    let tracking_config = vwo_to_sentry::config::Config::from_vars(&read).unwrap();
    let tracking = vwo_to_sentry::App::new(tracking_config, testkit::ssm(&aws), &aws).unwrap();
    let kill_config = sentry_to_vwo::config::Config::from_vars(&read).unwrap();
    let kill = sentry_to_vwo::App::new(kill_config, testkit::ssm(&aws), &aws).unwrap();
    tokio::join!(tracking.warm_up(), kill.warm_up());
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
    // VWO delivers a webhook answered 5xx again, every 1–2 s (docs/change-tracking.md): a busy
    // token's slot (the kill's toggle goes first) is such an answer.
    let deliver_as_vwo = || async {
        let mut answered = (0, serde_json::Value::Null);
        for _ in 0..5 {
            answered = answer(vwo_to_sentry::handle(&tracking, request(vwo_webhook())).await);
            if answered.0 < 500 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
        answered
    };
    let (status, body) = deliver_as_vwo().await;
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
    let (status, body) = deliver_as_vwo().await;
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
        5,
        "five random secrets created on first run (the fifth: the local Sentry API token)"
    );
    let secrets_path = local.secrets.to_str().unwrap();
    let try_story = || {
        bridge(
            &["try", "--url", &local.base, "--secrets", secrets_path],
            &[],
        )
    };
    let out = try_story();
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
            || said.contains("the kill switch accepted the kill and queued it")
            || said.contains("the kill switch answered 202 at once and decides after the answer"),
        "{said}"
    );
    assert!(
        said.contains("turned search-v2 OFF in production")
            || said.contains("the kill switch accepted the kill and queued it")
            || said.contains("the kill switch answered 202 at once and decides after the answer"),
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
    // And the point of judging against the issue's start: an issue that began yesterday fires
    // its alert after today's change, and nothing is switched, with the reason.
    let yesterday = said
        .lines()
        .find(|l| l.starts_with("7. The same alert rule fires for an issue that began yesterday"))
        .unwrap_or_else(|| panic!("no step 7:\n{said}"));
    // Answered at once, or decided by the worker after the answer (said so) when the evidence was
    // slow to come on a loaded machine.
    assert!(
        yesterday.contains("nothing switched: no suspect: none of the 1 flags on the event that were on changed in production in the 60 min before issue ")
            || yesterday.contains("nothing switched (decided after the answer): no suspect: none of the 1 flags on the event that were on changed in production in the 60 min before issue "),
        "{yesterday}"
    );
    // A second run tells the same story (the flag was left off by the kill).
    let again = try_story();
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
    let send = || {
        let (payload, secret) = (payload.to_str().unwrap(), secret_file.to_str().unwrap());
        let args = [
            "send",
            "--url",
            &url,
            "--payload",
            payload,
            "--resource",
            "event_alert",
        ];
        let out = bridge(&[&args[..], &["--secret-file", secret]].concat(), &[]);
        (out.status.code(), text(&out))
    };
    let (code, said) = send();
    assert_eq!(code, Some(0), "{said}");
    assert!(said.starts_with("HTTP 200"), "{said}");
    // The sample's rule settings name checkout-new-flow in production: they override the URL.
    assert!(said.contains(r#""feature":"checkout-new-flow""#), "{said}");
    std::fs::write(&secret_file, "wrong").unwrap();
    let (code, said) = send();
    assert_eq!(code, Some(1));
    assert!(
        said.contains("HTTP 401") && said.contains("Sentry-Hook-Error: unauthorized"),
        "{said}"
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
    for line in [
        "contexts.flags search-v2 = true",
        "suspect flag: search-v2 — updated by ana@example.com",
        // At once, queued or decided after the answer: VWO is asked to turn it off.
        "VWO was asked: PATCH /api/v2/accounts/current/environments/production/features/search-v2/toggle {\"isEnabled\":false}",
    ] {
        assert!(said.contains(line), "{line}\n{said}");
    }
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
    let secrets_path = secrets.to_str().unwrap();
    let spawn = |args: &[&str], output: fn() -> Stdio| {
        Command::new(env!("CARGO_BIN_EXE_bridge"))
            .args(args)
            .current_dir(workspace_root())
            .stdout(output())
            .stderr(output())
            .spawn()
            .unwrap()
    };
    let early = spawn(
        &["try", "--url", &base, "--secrets", secrets_path],
        Stdio::piped,
    );
    std::thread::sleep(std::time::Duration::from_secs(1));
    let port = port.to_string();
    let mut local = spawn(
        &["local", "--port", &port, "--secrets", secrets_path],
        Stdio::null,
    );
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
